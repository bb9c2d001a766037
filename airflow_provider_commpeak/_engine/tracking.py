"""
Where a wait for delivery stands, kept compactly: only the messages still pending are remembered
(16 bytes each when they are plain uuids), finals are counted, and failed uuids kept up to a cap.

Shared by the sensor (poke mode) and the trigger, so a million messages cost a few tens of MB in
either, and what they report (logs, trigger events, XCom) holds counts, not a map per message.
"""

from __future__ import annotations

import uuid as uuid_module
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_commpeak._engine.status import UNKNOWN
from airflow_provider_commpeak._input.bloom import BloomSet

#: How many failed uuids a summary (event, XCom) carries at most.
MAX_FAILED_UUIDS = 1000


@dataclass(frozen=True)
class DeliveryVerdict:
    """
    Where a set of messages stands.

    :param succeeded: Messages in a success status.
    :param failed: Messages in a failure status.
    :param pending: Messages in neither (``sent``, ``unknown``, ...).
    :param too_many_failures: ``failed`` exceeds what is allowed: no point waiting.
    """

    succeeded: int
    failed: int
    pending: int
    too_many_failures: bool

    @property
    def done(self) -> bool:
        """Every message reached a final status (or failures already exceed the allowance)."""
        return self.pending == 0 or self.too_many_failures


class CompactUuids:
    """A list of message ids: canonical uuids packed 16 bytes each, anything else kept as text."""

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._packed = bytearray()
        self._others: list[str] = []
        for value in ids:
            self.append(value)

    def append(self, value: str) -> None:
        try:
            parsed = uuid_module.UUID(value)
        except (ValueError, AttributeError, TypeError):
            parsed = None
        if parsed is not None and str(parsed) == value:
            self._packed += parsed.bytes
        else:
            self._others.append(value)

    def __len__(self) -> int:
        return len(self._packed) // 16 + len(self._others)

    def __iter__(self) -> Iterator[str]:
        view = memoryview(self._packed)
        for start in range(0, len(view), 16):
            yield str(uuid_module.UUID(bytes=bytes(view[start : start + 16])))
        yield from self._others

    def deduplicated(self) -> CompactUuids:
        """
        The same ids, each once (the first of each kept). A Bloom filter finds candidate repeats and an
        exact pass confirms them, so no set of a million ids is ever built.
        """
        packed = memoryview(self._packed)
        seen, candidates = BloomSet(len(packed) // 16), set()
        for start in range(0, len(packed), 16):
            key = bytes(packed[start : start + 16])
            if seen.add(key):
                candidates.add(key)
        unique = CompactUuids()
        if candidates:
            kept: set[bytes] = set()
            for start in range(0, len(packed), 16):
                key = bytes(packed[start : start + 16])
                if key in candidates:
                    if key in kept:
                        continue
                    kept.add(key)
                unique._packed += key
        else:
            unique._packed = bytearray(self._packed)
        unique._others = list(dict.fromkeys(self._others))
        return unique


def chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """``items`` as lists of ``size`` (the last may be shorter); only one list is held at a time."""
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class DeliverySnapshot:
    """
    Where a wait stands, in counts: what logs, trigger events and large XComs carry.

    :param total: Messages waited for.
    :param final_counts: Final messages by status.
    :param pending_counts: Messages not final yet, by their current status (``sent``, ``unknown``...).
    :param failed_uuids: Some of the failed messages' uuids (at most :data:`MAX_FAILED_UUIDS`).
    :param statuses: ``{uuid: status}`` of every message, when kept (small sets).
    """

    total: int
    success: frozenset[str]
    failure: frozenset[str]
    final_counts: Counter[str] = field(default_factory=Counter)
    pending_counts: Counter[str] = field(default_factory=Counter)
    failed_uuids: list[str] = field(default_factory=list)
    statuses: dict[str, str] | None = None

    @classmethod
    def from_event(
        cls, event: Mapping[str, Any], *, success: frozenset[str], failure: frozenset[str]
    ) -> DeliverySnapshot:
        """Rebuild a snapshot from a trigger event's counts."""
        counts = Counter({str(status): int(n) for status, n in (event.get("counts") or {}).items()})
        final = Counter({s: n for s, n in counts.items() if s in success or s in failure})
        return cls(
            total=int(event.get("total") or 0),
            success=success,
            failure=failure,
            final_counts=final,
            pending_counts=counts - final,
            failed_uuids=[str(u) for u in event.get("failed_uuids") or []],
        )

    @property
    def succeeded(self) -> int:
        return sum(n for status, n in self.final_counts.items() if status in self.success)

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.final_counts.items() if status in self.failure)

    @property
    def pending(self) -> int:
        return sum(self.pending_counts.values())

    def verdict(self, allowed_failures: int) -> DeliveryVerdict:
        return DeliveryVerdict(
            succeeded=self.succeeded,
            failed=self.failed,
            pending=self.pending,
            too_many_failures=self.failed > allowed_failures,
        )

    def describe(self) -> str:
        """``"9,500 delivered, 12 undelivered, 488 pending (400 sent, 88 unknown) of 10,000"``."""
        finals = [f"{n:,} {status}" for status, n in sorted(self.final_counts.items(), key=lambda i: -i[1])]
        waiting = ", ".join(f"{n:,} {s}" for s, n in sorted(self.pending_counts.items(), key=lambda i: -i[1]) if n)
        parts = [*finals, f"{self.pending:,} pending" + (f" ({waiting})" if self.pending else "")]
        return f"{', '.join(parts)} of {self.total:,}"

    def summary(self) -> dict[str, Any]:
        """Counts, JSON-able and bounded whatever the number of messages (trigger events, large XComs)."""
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "pending": self.pending,
            "counts": {**dict(self.final_counts), **{s: n for s, n in self.pending_counts.items() if n}},
            "failed_uuids": list(self.failed_uuids),
        }


class DeliveryTracker:
    """
    The statuses of a set of messages as polls come in: the pending ones, compactly, and a snapshot.

    :param uuids: The messages to wait for (duplicates are counted once).
    :param success_statuses: Statuses that mean delivered.
    :param failure_statuses: Statuses that mean never delivered.
    :param keep_statuses: Also keep ``{uuid: status}`` of final messages (small sets, for XCom).
    """

    def __init__(
        self,
        uuids: Iterable[str],
        *,
        success_statuses: Collection[str],
        failure_statuses: Collection[str],
        keep_statuses: bool = False,
    ) -> None:
        self.pending = CompactUuids(uuids).deduplicated()
        total = len(self.pending)
        self.snapshot = DeliverySnapshot(
            total=total,
            success=frozenset(success_statuses),
            failure=frozenset(failure_statuses),
            pending_counts=Counter({UNKNOWN: total}),
            statuses=dict.fromkeys(self.pending, UNKNOWN) if keep_statuses else None,
        )

    @property
    def total(self) -> int:
        return self.snapshot.total

    def add_settled(self, counts: Mapping[str, int], failed_uuids: Iterable[str] = ()) -> None:
        """Count messages found final before this tracker took over (a sensor's poke before deferring)."""
        snap = self.snapshot
        for status, n in counts.items():
            snap.final_counts[str(status)] += int(n)
            snap.total += int(n)
        room = MAX_FAILED_UUIDS - len(snap.failed_uuids)
        snap.failed_uuids.extend(list(failed_uuids)[: max(room, 0)])

    def update(self, answer: Mapping[str, str]) -> None:
        """Take one poll's answer: messages now final leave the pending set."""
        poll = self.poll()
        poll.take(self.pending, answer)
        poll.finish()

    def poll(self) -> PollRound:
        """Start a poll taken slice by slice (:meth:`PollRound.take`); nothing changes until it finishes."""
        return PollRound(self)


class PollRound:
    """
    One poll over the pending messages, answered a slice at a time, so a million pending messages
    never have their statuses in memory at once. A round that fails half-way is dropped: the
    tracker keeps the previous poll's state.
    """

    def __init__(self, tracker: DeliveryTracker) -> None:
        self._tracker = tracker
        self._still = CompactUuids()
        self._counts: Counter[str] = Counter()
        self._finals: Counter[str] = Counter()
        self._failed: list[str] = []
        self._statuses: dict[str, str] = {}

    def take(self, uuids: Iterable[str], answer: Mapping[str, str]) -> None:
        """The statuses of ``uuids`` (pending ones, each once) as the API answered them."""
        snap = self._tracker.snapshot
        room = MAX_FAILED_UUIDS - len(snap.failed_uuids)
        for uuid in uuids:
            status = answer.get(uuid, UNKNOWN)
            if snap.statuses is not None:
                self._statuses[uuid] = status
            if status in snap.success or status in snap.failure:
                self._finals[status] += 1
                if status in snap.failure and len(self._failed) < room:
                    self._failed.append(uuid)
            else:
                self._still.append(uuid)
                self._counts[status] += 1

    def finish(self) -> None:
        """Every pending message was taken: the finals leave the pending set."""
        tracker, snap = self._tracker, self._tracker.snapshot
        snap.final_counts.update(self._finals)
        snap.failed_uuids.extend(self._failed)
        if snap.statuses is not None:
            snap.statuses.update(self._statuses)
        tracker.pending, snap.pending_counts = self._still, self._counts
