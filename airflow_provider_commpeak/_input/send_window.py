"""
Quiet hours: a message goes out only while its recipient's local time is inside the send window.

The time zone comes from the number (libphonenumber's time zone metadata). A number whose prefix
spans several zones (a mobile range of a large country, a toll-free number) is sent only while the
window is open in *all* of them. Pure and clock-free: every function takes the current UTC time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

#: Weekday names accepted by ``send_window_days`` (Monday first, as ``datetime.weekday()``).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How far ahead the next opening is looked for (a week covers every weekday rule).
LOOKAHEAD_DAYS = 8


def utcnow() -> datetime:
    """The current time (tests replace it)."""
    return datetime.now(UTC)


@lru_cache(maxsize=65536)
def time_zones_of(phone: str) -> tuple[str, ...]:
    """The IANA time zones a number in international digits may be in (``()`` when unknown)."""
    import phonenumbers
    from phonenumbers import timezone

    try:
        zones = timezone.time_zones_for_number(phonenumbers.parse(f"+{phone}"))
    except phonenumbers.NumberParseException:
        return ()
    return tuple(zone for zone in zones if zone != timezone.UNKNOWN_TIMEZONE)


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _parse_time(value: object, name: str) -> time | str:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value.strip())
        except ValueError:
            pass
    return f"{name}: {str(value)[:20]!r} is not a time of day like '08:00'"


def _parse_days(days: object) -> frozenset[int] | str | None:
    if days is None:
        return None
    if isinstance(days, (str, bytes)) or not isinstance(days, Iterable):
        return "send_window_days must be a list of weekdays such as ['mon', 'tue'] or 0-6 (Monday 0)"
    found: set[int] = set()
    for day in days:
        if isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6:
            found.add(day)
        elif isinstance(day, str) and day.strip().lower()[:3] in WEEKDAYS:
            found.add(WEEKDAYS.index(day.strip().lower()[:3]))
        else:
            return f"send_window_days: {str(day)[:12]!r} is not a weekday (mon-sun, or 0-6 with Monday 0)"
    if not found:
        return "send_window_days is empty: nothing could ever be sent"
    return frozenset(found)


@dataclass(frozen=True)
class SendWindow:
    """
    Local hours (and optionally weekdays) during which messages may go out.

    :param start: Opening time, local to the recipient.
    :param end: Closing time; earlier than ``start`` for a window that wraps midnight (22:00-06:00).
    :param days: Weekdays the window opens on (0 = Monday); ``None``: every day. For a window that
        wraps midnight, the day it opened counts.
    """

    start: time
    end: time
    days: frozenset[int] | None = None

    @classmethod
    def build(cls, window: object, days: object = None) -> SendWindow:
        """Parse ``("08:00", "21:00")`` and optional weekdays; :class:`ValueError` lists every problem."""
        problems = send_window_problems(window, days)
        if problems:
            raise ValueError("; ".join(problems))
        assert isinstance(window, (tuple, list))
        start, end = (_parse_time(v, "send_window") for v in window)
        parsed_days = _parse_days(days)
        assert isinstance(start, time)
        assert isinstance(end, time)
        assert not isinstance(parsed_days, str)
        return cls(start, end, parsed_days)

    def _open_local(self, local: datetime) -> bool:
        moment = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            opened_on = local.weekday()
            inside = self.start <= moment < self.end
        else:  # wraps midnight: after the start, or before the end (opened the day before)
            inside = moment >= self.start or moment < self.end
            opened_on = local.weekday() if moment >= self.start else (local.weekday() - 1) % 7
        return inside and (self.days is None or opened_on in self.days)

    def is_open(self, zones: tuple[str, ...], now: datetime) -> bool:
        """Whether the window is open right now in every one of ``zones``."""
        return bool(zones) and all(self._open_local(now.astimezone(_zone(zone))) for zone in zones)

    def next_open(self, zones: tuple[str, ...], now: datetime) -> datetime | None:
        """The first moment from ``now`` when the window is open in all ``zones``; ``None`` within a week."""
        if not zones:
            return None
        if self.is_open(zones, now):
            return now
        candidates = sorted(
            opening
            for zone in zones
            for opening in self._openings(zone, now)
            if opening > now and self.is_open(zones, opening)
        )
        return candidates[0] if candidates else None

    def closes_at(self, zones: tuple[str, ...], now: datetime) -> datetime:
        """When the window, open now in all ``zones``, first closes in one of them."""
        closings = [self._closing(zone, now) for zone in zones]
        return min(closings)

    def _openings(self, zone: str, now: datetime) -> Iterable[datetime]:
        local_today = now.astimezone(_zone(zone)).date()
        for offset in range(-1, LOOKAHEAD_DAYS):
            day = local_today + timedelta(days=offset)
            yield datetime.combine(day, self.start, tzinfo=_zone(zone)).astimezone(UTC)

    def _closing(self, zone: str, now: datetime) -> datetime:
        local = now.astimezone(_zone(zone))
        for offset in range(0, 2):
            closing = datetime.combine(local.date() + timedelta(days=offset), self.end, tzinfo=_zone(zone))
            if closing > local:
                return closing.astimezone(UTC)
        return (now + timedelta(days=1)).astimezone(UTC)  # pragma: no cover - a day always has a closing

    def describe(self) -> str:
        days = "" if self.days is None else " on " + ", ".join(WEEKDAYS[d] for d in sorted(self.days))
        return f"{self.start.isoformat('minutes')}-{self.end.isoformat('minutes')} recipient time{days}"


def send_window_problems(window: object, days: object = None) -> list[str]:
    """Every problem with ``send_window`` / ``send_window_days``, at once."""
    if window is None:
        return [] if days is None else ["send_window_days needs send_window"]
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        return ["send_window must be a pair of local times such as ('08:00', '21:00')"]
    problems = [p for p in (_parse_time(v, "send_window") for v in window) if isinstance(p, str)]
    if not problems and window[0] == window[1]:
        problems.append("send_window opens and closes at the same time: give two different times")
    parsed_days = _parse_days(days)
    if isinstance(parsed_days, str):
        problems.append(parsed_days)
    return problems
