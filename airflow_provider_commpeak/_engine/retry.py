"""One retry policy for every request: exponential backoff with jitter, ``Retry-After`` honoured."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from airflow_provider_commpeak._engine.arguments import hook_params_problems


def finite_seconds(value: object, *, name: str, minimum: float = 0.0, maximum: float = 86400.0) -> float:
    """
    ``value`` as a number of seconds in ``[minimum, maximum]``, else :class:`ValueError` naming ``name``.

    Refuses NaN, infinities, booleans and strings that are not numbers: a ``timeout`` of ``"inf"``
    would make a request wait forever, one of ``"nan"`` would crash after the API accepted a batch.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of seconds, got {type(value).__name__}") from None
    if not math.isfinite(seconds) or not minimum <= seconds <= maximum:
        raise ValueError(f"{name} must be between {minimum:g} and {maximum:g} seconds, got {value!r}")
    return seconds


def parse_retry_after(value: str | None, *, cap: float) -> float | None:
    """
    Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), at most ``cap``.

    ``None`` when the header is missing, unreadable, negative or not finite (``nan``, ``inf``).
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = max((when - datetime.now(UTC)).total_seconds(), 0.0)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, cap)


@dataclass(frozen=True)
class RetryPolicy:
    """
    How often and how long to wait before trying a request again.

    :param max_retries: Retries after the first try.
    :param backoff_base: Seconds before the first retry; doubles each time.
    :param backoff_max: The longest wait, ``Retry-After`` included.
    """

    max_retries: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 60.0

    def __post_init__(self) -> None:
        settings = {"max_retries": self.max_retries, "backoff_base": self.backoff_base, "backoff_max": self.backoff_max}
        problems = [f"{name} must be set" for name, value in settings.items() if value is None]
        problems += hook_params_problems(settings)
        if problems:
            raise ValueError("; ".join(problems))

    def delay(self, attempt: int, retry_after: str | float | None = None, *, base: float | None = None) -> float:
        """
        Seconds to wait before retry number ``attempt`` (1 for the first retry).

        ``Retry-After`` (already parsed or as the header's text) wins when it is readable; otherwise
        exponential backoff with "equal jitter": between half and all of ``base * 2**(attempt-1)``,
        so clients retrying at once spread out.
        """
        if isinstance(retry_after, str):
            retry_after = parse_retry_after(retry_after, cap=self.backoff_max)
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        return backoff_delay(attempt, base=self.backoff_base if base is None else base, cap=self.backoff_max)


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Exponential backoff with equal jitter: a random value in ``[c/2, c]``, ``c = min(cap, base*2**(n-1))``."""
    ceiling = min(cap, base * (2 ** min(max(attempt - 1, 0), 30)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
