"""Retry delays: exponential backoff with jitter, and the ``Retry-After`` header."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """
    Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Exponential (``base * 2**(attempt-1)``, at most ``cap``) with "equal jitter": a random value
    between half and all of it, so that many clients retrying at once spread out.
    """
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, *, cap: float) -> float | None:
    """
    Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), at most ``cap``.

    ``None`` when the header is missing or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), cap)
