"""
Every numeric argument's bounds, defined once, and one way to check them.

The operator, sensor, notifier and hook all check their arguments here, so a bound cannot differ
between them. Checks collect problems (every problem is reported at once); the caller raises.
"""

from __future__ import annotations

import math
from typing import Any

#: Integer arguments: ``name -> (minimum, maximum)``.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "batch_size": (1, 1000),
    "max_concurrency": (1, 64),
    "max_xcom_results": (1, 10_000_000),
    "max_segments": (1, 100),
    "status_batch_size": (1, 10_000),
    "max_consecutive_errors": (1, 1000),
}
#: Arguments in seconds: ``name -> (minimum, maximum)``.
SECONDS_BOUNDS: dict[str, tuple[float, float]] = {
    "rate_limit_timeout": (1, 86400),
    "timeout": (0.1, 600),
    "min_interval": (0.001, 31 * 86400),
}


def int_problem(name: str, value: Any, *, bound: str | None = None) -> list[str]:
    """
    The problem with one integer argument, if any (``None`` means "not set").

    :param bound: The bound it shares, when its name differs (``get_statuses(batch_size=...)`` is
        bound as ``status_batch_size``).
    """
    low, high = INT_BOUNDS[bound or name]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
        return [f"{name} must be an int between {low} and {high}, got {value!r}"]
    return []


def int_problems(**values: Any) -> list[str]:
    """Problems with integer arguments (``None`` is allowed and means "not set")."""
    return [problem for name, value in values.items() for problem in int_problem(name, value)]


def seconds_problems(**values: Any) -> list[str]:
    """Problems with arguments in seconds (``None`` is allowed and means "not set")."""
    problems = []
    for name, value in values.items():
        low, high = SECONDS_BOUNDS[name]
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            problems.append(f"{name} must be a number of seconds between {low:g} and {high:g}, got {value!r}")
    return problems
