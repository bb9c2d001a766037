"""
What earlier tries of a task instance settled, kept in Airflow's ``task_state_store`` (Airflow >= 3.3).

Each batch is written ahead: before its request goes out, its ids are recorded as *sending*; when
the answer is in, the same key is overwritten with what it settled (accepted ids with their uuids,
``UNCONFIRMED`` ids, and refusals that carried a uuid). A retried try reads every key back and does
not send again what is settled. A try killed between the two writes (SIGKILL, OOM) leaves its
batches *sending*: the retry counts them ``UNCONFIRMED`` (they may have been accepted) instead of
sending them a second time. Messages that were pushed back or never sent are not recorded, so a
retry sends them.

Writes happen in the sending thread, as soon as the answer is read, before anything that can be
interrupted (a task timeout, a raising callback) gets control back.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from airflow_provider_commpeak._engine.report import UNCONFIRMED, MessageResult

INDEX_KEY = "commpeak_send.batches"
BATCH_KEY = "commpeak_send.batch.{}"
#: Batch numbers are reserved this many at a time, so the index is written once per this many batches.
INDEX_STEP = 64


def _settled_entries(entry: Mapping[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """A batch record's settled results; records written by version 1.0 (``accepted``/``unconfirmed``) too."""
    rows = [(str(i), u, e) for i, u, e in entry.get("settled", [])]
    rows += [(str(i), str(u), None) for i, u in (entry.get("accepted") or {}).items()]
    rows += [(str(i), None, UNCONFIRMED) for i in entry.get("unconfirmed") or []]
    return rows


class SendLedger:
    """
    The durable record of a task instance's sends.

    :param store: ``context["task_state_store"]``, or ``None`` where Airflow has none (then nothing
        is recorded and nothing is known of earlier tries).
    :param resend_unconfirmed: Treat earlier ``UNCONFIRMED`` messages as not settled (send them again).
    """

    def __init__(self, store: Any | None, *, resend_unconfirmed: bool = False) -> None:
        self.store = store
        self.resend_unconfirmed = resend_unconfirmed
        self._lock = threading.Lock()
        self._reserved = int(store.get(INDEX_KEY, 0) or 0) if store is not None else 0
        self._next = self._reserved

    @classmethod
    def from_context(cls, context: Mapping[str, Any], *, resend_unconfirmed: bool = False) -> SendLedger:
        """The ledger of the running task instance (an inert one before Airflow 3.3)."""
        return cls(context.get("task_state_store"), resend_unconfirmed=resend_unconfirmed)

    @property
    def durable(self) -> bool:
        """Whether what is recorded survives a retry of the task."""
        return self.store is not None

    def settled(self) -> dict[str, MessageResult]:
        """What earlier tries settled and must not be sent again, by ``internal_id``."""
        found: dict[str, MessageResult] = {}
        if self.store is None:
            return found
        for index in range(self._reserved):
            entry = self.store.get(BATCH_KEY.format(index))
            if not isinstance(entry, Mapping):
                continue
            for internal_id in entry.get("sending", []):
                found.setdefault(str(internal_id), MessageResult(str(internal_id), None, UNCONFIRMED))
            for internal_id, message_uuid, error in _settled_entries(entry):
                current = found.get(internal_id)
                if current is None or not current.accepted:
                    found[internal_id] = MessageResult(internal_id, message_uuid, error)
        if self.resend_unconfirmed:
            found = {k: v for k, v in found.items() if v.error != UNCONFIRMED}
        return found

    def begin(self, internal_ids: list[str]) -> int | None:
        """Record a batch as *sending*, before its request goes out; return its key's number."""
        if self.store is None:
            return None
        with self._lock:
            number = self._next
            self._next += 1
            if self._next > self._reserved:
                self._reserved += INDEX_STEP
                self.store.set(INDEX_KEY, self._reserved)
        self.store.set(BATCH_KEY.format(number), {"sending": internal_ids})
        return number

    def finish(self, number: int | None, results: list[MessageResult]) -> None:
        """Replace a batch's *sending* record with what its answer settled (not what was pushed back)."""
        if self.store is None or number is None:
            return
        settled = [list(r) for r in results if r.accepted or r.error == UNCONFIRMED or r.message_uuid]
        self.store.set(BATCH_KEY.format(number), {"settled": settled})
