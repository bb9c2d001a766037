"""``allowed_failures``: an int is a count, a float in (0, 1) a fraction of all messages."""

from __future__ import annotations

import math


def allowed_failures_problems(allowed_failures: object, *, name: str = "allowed_failures") -> list[str]:
    """What is wrong with an ``allowed_failures`` value: an int >= 0 (a count) or a float in (0, 1)."""
    if isinstance(allowed_failures, bool) or not isinstance(allowed_failures, (int, float)):
        return [f"{name} must be an int >= 0 or a float in (0, 1), got {type(allowed_failures).__name__}"]
    if isinstance(allowed_failures, int) and allowed_failures < 0:
        return [f"{name} must not be negative"]
    if isinstance(allowed_failures, float) and not 0 < allowed_failures < 1:
        return [f"{name} as a float is a fraction and must be in (0, 1); use an int for a count"]
    return []


def failures_allowed(allowed_failures: int | float, total: int) -> int:
    """How many failures out of ``total`` ``allowed_failures`` tolerates (a fraction rounds down)."""
    if isinstance(allowed_failures, float):
        return math.floor(allowed_failures * total)
    return allowed_failures
