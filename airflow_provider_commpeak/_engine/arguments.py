"""
Every numeric argument's bounds, defined once, and one way to check them.

The operator, sensor, notifier and hook all check their arguments here, so a bound cannot differ
between them. Checks collect problems (every problem is reported at once); the caller raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

#: Integer arguments: ``name -> (minimum, maximum)``.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "batch_size": (1, 1000),
    "max_concurrency": (1, 64),
    "max_xcom_results": (1, 10_000_000),
    "max_segments": (1, 100),
    "status_batch_size": (1, 10_000),
    "max_consecutive_errors": (1, 1000),
    "max_retries": (0, 100),
}
#: Arguments in seconds: ``name -> (minimum, maximum)``.
SECONDS_BOUNDS: dict[str, tuple[float, float]] = {
    "rate_limit_timeout": (1, 86400),
    "timeout": (0.1, 600),
    "min_interval": (0.001, 31 * 86400),
    "backoff_base": (0, 3600),
    "backoff_max": (0, 3600),
}
#: What ``hook_params`` may set (the hook's JSON-able settings) and how each is bound.
HOOK_PARAMS = ("timeout", "max_retries", "backoff_base", "backoff_max", "rate_limit_timeout")


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


#: Arguments in messages per second: ``name -> (minimum, maximum)``.
RATE_BOUNDS: dict[str, tuple[float, float]] = {
    "max_rate": (0.01, 1_000_000),
}


def seconds_problems(**values: Any) -> list[str]:
    """Problems with arguments in seconds (``None`` is allowed and means "not set")."""
    return _number_problems(values, SECONDS_BOUNDS, "a number of seconds")


def rate_problems(**values: Any) -> list[str]:
    """Problems with arguments in messages per second (``None`` is allowed and means "not set")."""
    return _number_problems(values, RATE_BOUNDS, "a number of messages per second")


def _number_problems(values: Mapping[str, Any], bounds: Mapping[str, tuple[float, float]], what: str) -> list[str]:
    problems = []
    for name, value in values.items():
        low, high = bounds[name]
        if value is None:
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not low <= value <= high
        ):
            problems.append(f"{name} must be {what} between {low:g} and {high:g}, got {value!r}")
    return problems


def hook_params_problems(hook_params: Any) -> list[str]:
    """
    Problems with a ``hook_params`` mapping (``None`` is allowed): unknown keys, values out of bounds.

    Only JSON-able settings may travel (a deferred sensor serializes them to the trigger): the
    hook's ``clock`` and ``sleep`` are for tests and are refused here.
    """
    if hook_params is None:
        return []
    if not isinstance(hook_params, Mapping):
        return [f"hook_params must be a dict, got {type(hook_params).__name__}"]
    problems = []
    unknown = sorted(str(key) for key in hook_params if key not in HOOK_PARAMS)
    if unknown:
        problems.append(f"hook_params has unknown key(s) {', '.join(unknown)} (allowed: {', '.join(HOOK_PARAMS)})")
    problems += int_problems(**{k: v for k, v in hook_params.items() if k in INT_BOUNDS and k in HOOK_PARAMS})
    problems += seconds_problems(**{k: v for k, v in hook_params.items() if k in SECONDS_BOUNDS and k in HOOK_PARAMS})
    return problems


def valid_until_problems(valid_until: Any) -> list[str]:
    """``valid_until`` must be a timezone-aware ``datetime`` (``None`` is allowed)."""
    if valid_until is None:
        return []
    if not isinstance(valid_until, datetime):
        return [f"valid_until must be a datetime, got {type(valid_until).__name__}"]
    if valid_until.tzinfo is None or valid_until.utcoffset() is None:
        return ["valid_until must be timezone-aware (e.g. pendulum.now('UTC').add(minutes=10))"]
    return []


def valid_for_problems(valid_for: Any) -> list[str]:
    """``valid_for`` must be a positive ``timedelta`` or number of seconds (``None`` is allowed)."""
    if valid_for is None:
        return []
    seconds = valid_for.total_seconds() if isinstance(valid_for, timedelta) else valid_for
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        return [f"valid_for must be a positive timedelta or number of seconds, got {valid_for!r}"]
    return []
