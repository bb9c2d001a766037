"""The sandbox's memory: accepted messages, the rate limit, delivery outcomes and queued faults."""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

#: Documented test numbers: send to one of these to get a chosen outcome (any format works,
#: ``+1 555 000 0001`` included). Every other number is ``delivered`` after the delivery delay.
TEST_NUMBERS: dict[str, str] = {
    "15550000001": "undelivered",
    "15550000002": "rejected",
    "15550000003": "no_routes",
    "15550000004": "sent_failed",
    "15550000005": "sent",  # stays "sent" forever: never final
}
#: A number the sandbox refuses at send time with a per-message error (not a delivery status).
REFUSED_NUMBER = "15550000009"
REFUSED_ERROR = "INVALID_RECIPIENT"

#: The fault modes, each for the next N requests (see the README's sandbox section).
FAULT_MODES = (
    "503",  # 503 before processing (safe to retry)
    "429",  # 429 with Retry-After before processing (safe to retry)
    "500",  # process the send, then answer 500 (outcome unknown to the client)
    "502",  # process the send, then answer 502
    "504",  # process the send, then answer 504
    "close",  # drop the connection before processing
    "close_after_accept",  # process the send, then drop the connection
    "hang",  # process the send, then answer only after `seconds` (past the client's timeout)
    "html",  # a proxy's HTML error page (502) before processing
    "not_json",  # process the send, then answer 200 with a body that is not JSON
    "403",  # answer 403 Not authenticated whatever the key
    "trickle",  # process the send, then answer one byte every `interval` seconds (a slow-loris server)
    "redirect",  # answer 307 to `location` without processing
)


def _number(value: Any, name: str, *, minimum: float = 0.0, maximum: float = 86400.0) -> float:
    """A finite number in ``[minimum, maximum]``, else :class:`ValueError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum:g} and {maximum:g}, got {value!r}")
    return float(value)


def _count(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass
class Fault:
    """
    One queued fault.

    :param mode: One of :data:`FAULT_MODES`.
    :param count: How many matching requests it applies to.
    :param path: Only requests to this path (``/simple_send/`` or ``/messages_status/``); ``None`` = any API path.
    :param retry_after: The ``Retry-After`` seconds of a 429; 0 sends none (an edge proxy's bare 429).
    :param seconds: How long ``hang`` holds the answer.
    :param after: Let this many matching requests through untouched first (a fault "mid-run").
    :param interval: Seconds between two bytes of a ``trickle`` answer.
    :param location: Where a ``redirect`` points.
    :param status: The status code of a ``redirect`` (301, 302, 307 or 308).
    """

    mode: str
    count: int = 1
    path: str | None = None
    retry_after: float = 1.0
    seconds: float = 60.0
    after: int = 0
    interval: float = 1.0
    location: str = "http://127.0.0.1:9/simple_send/"
    status: int = 307

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}; known: {', '.join(FAULT_MODES)}")
        self.count = _count(self.count, "count", minimum=1)
        self.after = _count(self.after, "after", minimum=0)
        self.retry_after = _number(self.retry_after, "retry_after")
        self.seconds = _number(self.seconds, "seconds", maximum=3600)
        self.interval = _number(self.interval, "interval", maximum=60)
        if self.path is not None and not isinstance(self.path, str):
            raise ValueError(f"path must be a string, got {self.path!r}")
        if not isinstance(self.location, str):
            raise ValueError(f"location must be a string, got {self.location!r}")
        if self.status not in (301, 302, 303, 307, 308):
            raise ValueError(f"status must be a redirect status (301, 302, 303, 307, 308), got {self.status!r}")


@dataclass
class Acceptance:
    """One message the sandbox accepted."""

    internal_id: str
    message_uuid: str
    sender: str
    recipient_phone: str
    message_content: str
    accepted_at: float
    outcome: str

    def public(self) -> dict[str, Any]:
        return asdict(self)


class TokenBucket:
    """
    ``rate`` tokens per second (messages, or status requests), bursting up to ``capacity`` (default:
    one second's worth); ``rate`` 0 means no limit.

    :meth:`drain` empties it for a while, as another client of the same key would.
    """

    def __init__(self, rate: float, *, capacity: float | None = None) -> None:
        self.rate = rate
        self.capacity = rate if capacity is None else capacity
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.drained_until = 0.0

    def drain(self, seconds: float) -> None:
        """Take every token for ``seconds``: nothing is accepted meanwhile, and refilling starts after."""
        self.drained_until = time.monotonic() + seconds
        self.tokens = 0.0

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        if now < self.drained_until:
            self.tokens, self.updated = 0.0, now
            return False
        self.tokens = min(self.capacity, self.tokens + (now - max(self.updated, self.drained_until)) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class SandboxSettings:
    """
    How the sandbox behaves.

    :param api_key: The only key it accepts.
    :param latency_ms: Added to every API answer.
    :param rate_limit: Messages per second before per-message ``RATE_LIMIT``; 0 = off.
    :param delivery_delay: Seconds a message stays ``sent`` before its final status.
    :param seed: Makes uuids reproducible.
    :param max_in_flight: API requests served at once; one more is answered 429 without
        ``Retry-After`` at once (an edge proxy's concurrency cap); 0 = no cap.
    :param status_rate_limit: ``messages_status`` requests per second, spaced evenly with no burst
        (as nginx's ``limit_req`` does); one sooner is answered 429 without ``Retry-After``; 0 = off.
    """

    api_key: str = "sandbox-key"
    latency_ms: float = 0.0
    rate_limit: float = 0.0
    delivery_delay: float = 1.0
    seed: int | None = None
    max_in_flight: int = 0
    status_rate_limit: float = 0.0


@dataclass
class SandboxState:
    """Everything the sandbox remembers, behind one lock."""

    settings: SandboxSettings
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every message and fault; wake any hung request."""
        with self.lock:
            self.rng = random.Random(self.settings.seed)
            self.bucket = TokenBucket(self.settings.rate_limit)
            self.status_bucket = TokenBucket(self.settings.status_rate_limit, capacity=1.0)
            self.status_refused = 0
            self.acceptances: list[Acceptance] = []
            self.by_uuid: dict[str, Acceptance] = {}
            self.times_accepted: Counter[str] = Counter()
            self.faults: list[Fault] = []
            self.requests: Counter[str] = Counter()
            self.refused = 0
            self.in_flight = 0
            self.over_capacity = 0
            self.first_refused_at: float | None = None
            self.accepted_before_first_refusal = 0
            self.wake.set()
            self.wake = threading.Event()

    def admit(self) -> bool:
        """One more API request in flight, unless ``max_in_flight`` are already (then count it refused)."""
        with self.lock:
            cap = self.settings.max_in_flight
            if cap > 0 and self.in_flight >= cap:
                self.over_capacity += 1
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        """An admitted request was answered."""
        with self.lock:
            self.in_flight = max(0, self.in_flight - 1)  # a reset meanwhile zeroed it

    def update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        """
        Change ``latency_ms``, ``rate_limit``, ``status_rate_limit``, ``delivery_delay`` or
        ``max_in_flight`` while running; ``drain`` empties the bucket.
        """
        bounds = {
            "latency_ms": 60_000.0,
            "rate_limit": 1e7,
            "status_rate_limit": 1e7,
            "delivery_delay": 86_400.0,
            "max_in_flight": 1000.0,
            "drain": 3600.0,
        }
        unknown = set(changes) - set(bounds)
        if unknown:
            raise ValueError(
                f"cannot change {', '.join(sorted(map(str, unknown)))}; can change {', '.join(sorted(bounds))}"
            )
        values = {name: _number(value, name, maximum=bounds[name]) for name, value in changes.items()}
        with self.lock:
            for name, value in values.items():
                if name == "max_in_flight":
                    self.settings.max_in_flight = int(value)
                elif name != "drain":
                    setattr(self.settings, name, value)
            if "rate_limit" in values:
                self.bucket = TokenBucket(self.settings.rate_limit)
            if "status_rate_limit" in values:
                self.status_bucket = TokenBucket(self.settings.status_rate_limit, capacity=1.0)
            if "drain" in values:
                self.bucket.drain(values["drain"])
            return asdict(self.settings)

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add_faults(self, faults: list[Fault]) -> None:
        with self.lock:
            self.faults.extend(faults)

    def next_fault(self, path: str) -> Fault | None:
        """Take one use of the first queued fault that matches ``path``."""
        with self.lock:
            self.requests[path] += 1
            for fault in self.faults:
                if fault.path in (None, path):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def accept(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        """Accept messages in order until the rate limit runs dry (the rest are left out)."""
        answer: list[dict[str, Any]] = []
        now = time.time()
        with self.lock:
            task_id = self.new_uuid()
            for message in messages:
                internal_id = message["internal_id"]
                if not self.bucket.take():
                    answer.append({"internal_id": internal_id, "message_uuid": None, "error": "RATE_LIMIT"})
                    self.refused += len(messages) - len(answer) + 1
                    if self.first_refused_at is None:
                        self.first_refused_at = now
                        self.accepted_before_first_refusal = len(self.acceptances)
                    break
                number = "".join(ch for ch in message["recipient_phone"] if ch.isdigit())
                if number == REFUSED_NUMBER:
                    answer.append({"internal_id": internal_id, "message_uuid": None, "error": REFUSED_ERROR})
                    continue
                record = Acceptance(
                    internal_id=internal_id,
                    message_uuid=self.new_uuid(),
                    sender=message["sender"],
                    recipient_phone=message["recipient_phone"],
                    message_content=message["message_content"],
                    accepted_at=now,
                    outcome=TEST_NUMBERS.get(number, "delivered"),
                )
                self.acceptances.append(record)
                self.by_uuid[record.message_uuid] = record
                self.times_accepted[internal_id] += 1
                answer.append({"internal_id": internal_id, "message_uuid": record.message_uuid, "error": None})
        return {"status": True, "task_id": task_id, "messages": answer}

    def status_of(self, message_uuid: str, now: float) -> str | None:
        record = self.by_uuid.get(message_uuid)
        if record is None:
            return None
        return record.outcome if now - record.accepted_at >= self.settings.delivery_delay else "sent"

    def admit_status_request(self) -> bool:
        """One ``messages_status`` request within ``status_rate_limit``, else count it refused."""
        with self.lock:
            if self.status_bucket.take():
                return True
            self.status_refused += 1
            return False

    def statuses(self, message_uuids: list[str]) -> dict[str, Any]:
        """The sandbox's answer shape: unknown uuids are left out."""
        now = time.time()
        with self.lock:
            found = [(u, self.status_of(u, now)) for u in message_uuids]
        return {"messages": [{"message_uuid": u, "status": s} for u, s in found if s is not None]}

    def stats(self) -> dict[str, Any]:
        """Counts only: cheap to ask for even after a million messages."""
        with self.lock:
            return {
                "accepted": len(self.acceptances),
                "distinct_internal_ids": len(self.times_accepted),
                "duplicated": sum(n - 1 for n in self.times_accepted.values()),
                "refused": self.refused,
                "over_capacity": self.over_capacity,
                "status_refused": self.status_refused,
                "requests": dict(self.requests),
                "first_accepted_at": self.acceptances[0].accepted_at if self.acceptances else None,
                "last_accepted_at": self.acceptances[-1].accepted_at if self.acceptances else None,
                "first_refused_at": self.first_refused_at,
                "accepted_before_first_refusal": self.accepted_before_first_refusal,
            }

    def inspection(self) -> dict[str, Any]:
        """Every acceptance, with how many times each internal_id was accepted."""
        with self.lock:
            return {
                "count": len(self.acceptances),
                "messages": [
                    {**a.public(), "times_accepted": self.times_accepted[a.internal_id]} for a in self.acceptances
                ],
                "requests": dict(self.requests),
                "faults": [asdict(f) for f in self.faults],
            }
