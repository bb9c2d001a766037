"""
What earlier tries of a task instance settled: the send ledger, the same on every store.

Each batch is written ahead: before its request goes out, its ids are recorded as *sending*; when
the answer is in, the same record is overwritten with what it settled (accepted ids with their
uuids, ``UNCONFIRMED`` ids, and refusals that carried a uuid). A retried try (or a Clear, where the
store outlives it) reads every record back and does not send again what is settled. A try killed
between the two writes (SIGKILL, OOM) leaves its batches *sending*: the retry counts them
``UNCONFIRMED`` (they may have been accepted) instead of sending them a second time. Messages that
were pushed back or never sent are not recorded, so a retry sends them.

Records are stored by name with a version key, a column per field of
:class:`~airflow_provider_commpeak._engine.report.MessageResult` (a new field is a new column;
records without it still read), and split so that no stored value exceeds :data:`MAX_RECORD_BYTES`
whatever the batch size::

    {"v": 2, "state": "sending", "internal_id": [...], "fp": [...]}
    {"v": 2, "state": "settled", "internal_id": [...], "message_uuid": [...], "error": [...],
     "task_id": [...], "fp": [...]}

``fp`` holds a short fingerprint of each message's content (number, sender, text): a retry that
finds an id settled with other content warns instead of skipping it silently. Records written by
versions 1.0 and 1.1 still read. Stores live in :mod:`~airflow_provider_commpeak._engine.ledger_stores`.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from airflow_provider_commpeak._engine.ledger_stores import TaskStateLedgerStore, UnreadableRecord
from airflow_provider_commpeak._engine.report import UNCONFIRMED, MessageResult, is_rate_limit
from airflow_provider_commpeak._engine.settled import SettledIndex
from airflow_provider_commpeak.exceptions import CommPeakError

INDEX_KEY = "commpeak_send.batches"
BATCH_KEY = "commpeak_send.batch.{}"
#: Record numbers are reserved this many at a time, so the index is written once per this many records.
INDEX_STEP = 64
#: The version of the records written now.
RECORD_VERSION = 2
#: No stored value is larger (Airflow's ``[state_store] max_value_storage_bytes`` is 64 KB).
MAX_RECORD_BYTES = 30_000


class LedgerStore(Protocol):
    """Where records live: a key-value store that survives a retry of the task."""

    #: Where the records are, in words (for errors and logs).
    where: str

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def clear_hint(self) -> str:
        """How a user starts this task instance's ledger over."""
        ...


def fingerprint(recipient_phone: str, sender: str, message_content: str) -> str:
    """A short fingerprint of a message's content (8 hex digits, CRC-32: it tells a change, not a secret)."""
    text = f"{recipient_phone}\x1f{sender}\x1f{message_content}"
    return f"{zlib.crc32(text.encode('utf-8', 'surrogatepass')):08x}"


class LedgerCorrupt(CommPeakError):
    """A ledger record cannot be read: nothing is sent until it is repaired or cleared."""


def _size(value: Any) -> int:
    return len(json.dumps(value))  # as Airflow measures a task_state_store value


def _split(columns: dict[str, list[Any]], state: str) -> list[dict[str, Any]]:
    """One record of ``columns`` (parallel lists), or as few parts as keep each under :data:`MAX_RECORD_BYTES`."""
    record = {"v": RECORD_VERSION, "state": state, **columns}
    count = len(columns["internal_id"])
    size = _size(record)
    if count <= 1 or size <= MAX_RECORD_BYTES:
        return [record]
    parts = min(count, -(-size * 10 // (MAX_RECORD_BYTES * 9)))  # a tenth spare for uneven rows
    step = -(-count // parts)
    records: list[dict[str, Any]] = []
    for start in range(0, count, step):
        records += _split({k: v[start : start + step] for k, v in columns.items()}, state)
    return records


class SendLedger:
    """
    The durable record of a task instance's sends.

    :param store: Where records live (see :mod:`~airflow_provider_commpeak._engine.ledger_stores`); a
        bare ``task_state_store`` is wrapped so every call to it is serialized. ``None``: nothing is
        recorded and nothing is known of earlier tries.
    :param resend_unconfirmed: Treat earlier ``UNCONFIRMED`` messages as not settled (send them again).
    """

    def __init__(self, store: Any | None, *, resend_unconfirmed: bool = False) -> None:
        if store is not None and not hasattr(store, "clear_hint"):
            store = TaskStateLedgerStore(store)
        self.store: LedgerStore | None = store
        self.resend_unconfirmed = resend_unconfirmed
        self._lock = threading.Lock()
        self._reserved = self._read_index() if store is not None else 0
        self._next = self._reserved

    @property
    def durable(self) -> bool:
        """Whether what is recorded survives a retry of the task."""
        return self.store is not None

    # -- reading -----------------------------------------------------------------------------------

    def _corrupt(self, key: str, what: str) -> LedgerCorrupt:
        assert self.store is not None
        return LedgerCorrupt(
            f"The send ledger's record {key!r} in {self.store.where} cannot be read ({what}); nothing was sent, "
            f"since it may hold messages already accepted. To start this task instance's ledger over "
            f"(and send again what it records), {self.store.clear_hint()}."
        )

    def _get(self, key: str) -> Any:
        assert self.store is not None

        try:
            return self.store.get(key)
        except UnreadableRecord as exc:
            raise self._corrupt(key, str(exc)) from None

    def _read_index(self) -> int:
        value = self._get(INDEX_KEY)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self._corrupt(INDEX_KEY, f"expected a count, got {type(value).__name__}")
        return value

    def records(self) -> Iterator[tuple[MessageResult, str | None]]:
        """Every result earlier tries recorded, with its content fingerprint, in the order written."""
        if self.store is None:
            return
        for index in range(self._reserved):
            key = BATCH_KEY.format(index)
            entry = self._get(key)
            if entry is None:
                continue
            try:
                rows = list(_read_record(entry))
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                raise self._corrupt(key, str(exc) or type(exc).__name__) from None
            for result, fp in rows:
                if not (self.resend_unconfirmed and result.error == UNCONFIRMED):
                    yield result, fp

    def settled(self) -> SettledIndex:
        """What earlier tries settled and must not be sent again (``.get(internal_id)``), compactly."""
        index = SettledIndex()
        for result, fp in self.records():
            index.add(result, fp)
        return index

    # -- writing -----------------------------------------------------------------------------------

    def _reserve(self, count: int) -> list[int]:
        assert self.store is not None
        with self._lock:
            numbers = list(range(self._next, self._next + count))
            self._next += count
            if self._next > self._reserved:
                while self._next > self._reserved:
                    self._reserved += INDEX_STEP
                self.store.set(INDEX_KEY, self._reserved)
        return numbers

    def _write(self, numbers: list[int], records: list[dict[str, Any]]) -> list[int]:
        """Write ``records``: the first ones in ``numbers``, any more in new numbers (written first)."""
        assert self.store is not None
        if len(records) > len(numbers):
            numbers = numbers + self._reserve(len(records) - len(numbers))
        for number, record in reversed(list(zip(numbers, records, strict=False))):
            self.store.set(BATCH_KEY.format(number), record)
        return numbers[: len(records)]

    def begin(self, messages: Iterable[tuple[str, str]]) -> list[int] | None:
        """
        Record a batch as *sending*, before its request goes out; return its records' numbers.

        :param messages: ``(internal_id, fingerprint)`` of each message of the batch.
        """
        if self.store is None:
            return None
        ids, fps = [], []
        for internal_id, fp in messages:
            ids.append(internal_id)
            fps.append(fp)
        records = _split({"internal_id": ids, "fp": fps}, "sending")
        return self._write(self._reserve(len(records)), records)

    def finish(self, numbers: list[int] | None, results: Iterable[tuple[MessageResult, str]]) -> None:
        """
        Replace a batch's *sending* records with what its answer settled (not what was pushed back).

        :param results: Each settled message's result and fingerprint.
        """
        if self.store is None or numbers is None:
            return
        columns: dict[str, list[Any]] = {name: [] for name in (*MessageResult._fields, "fp")}
        for result, fp in results:
            if result.accepted or result.error == UNCONFIRMED or result.message_uuid:
                for name, value in zip(MessageResult._fields, result, strict=True):
                    columns[name].append(value)
                columns["fp"].append(fp)
        records = _split(columns, "settled")
        records += [{"v": RECORD_VERSION, "state": "settled", "internal_id": []}] * (len(numbers) - len(records))
        self._write(numbers, records)


def _read_record(entry: Any) -> Iterable[tuple[MessageResult, str | None]]:
    """The results a record holds; records of versions 1.0 (by kind) and 1.1 (rows) too."""
    if not isinstance(entry, Mapping):
        raise TypeError(f"expected an object, got {type(entry).__name__}")
    if entry.get("v") == RECORD_VERSION:
        ids = entry["internal_id"]
        fps = entry.get("fp") or [None] * len(ids)
        if entry["state"] == "sending":
            for internal_id, fp in zip(ids, fps, strict=True):
                yield MessageResult(_text(internal_id), None, UNCONFIRMED), fp
            return
        # by name: a field the record lacks (written before the field existed) reads as None
        others = [entry.get(name) or [None] * len(ids) for name in MessageResult._fields[1:]]
        for internal_id, fp, *values in zip(ids, fps, *others, strict=True):
            result = MessageResult(_text(internal_id), *map(_optional, values))
            if not is_rate_limit(result.error):
                yield result, fp
        return
    if "v" in entry:
        raise ValueError(f"a record of version {entry['v']!r}, newer than this provider reads: upgrade it")
    if not entry.keys() & {"sending", "settled", "accepted", "unconfirmed"}:
        raise ValueError("a record of no known shape")
    for internal_id in entry.get("sending", []):  # version 1.1
        yield MessageResult(_text(internal_id), None, UNCONFIRMED), None
    for internal_id, uuid, error in entry.get("settled", []):
        if not is_rate_limit(error):
            yield MessageResult(_text(internal_id), _optional(uuid), _optional(error)), None
    for internal_id, uuid in (entry.get("accepted") or {}).items():  # version 1.0
        yield MessageResult(_text(internal_id), _text(uuid), None), None
    for internal_id in entry.get("unconfirmed") or []:
        yield MessageResult(_text(internal_id), None, UNCONFIRMED), None


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"expected an id, got {type(value).__name__}")
    return str(value)


def _optional(value: Any) -> str | None:
    return None if value is None else _text(value)
