"""
What earlier tries of a task instance got accepted, kept in Airflow's ``task_state_store``.

Airflow 3.3 gives each task instance a small key-value store that survives its retries. The send
operator writes one key per acknowledged batch (at most ``batch_size`` ids and uuids), so a retried
try resends only messages no earlier try got accepted. On older Airflow there is no store: the
ledger is empty and every try sends every message (the README says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_commpeak.hooks.report import UNCONFIRMED, SendReport

INDEX_KEY = "commpeak_send.batches"
BATCH_KEY = "commpeak_send.batch.{}"


class SendLedger:
    """
    Records each batch's outcome as it is known, and reads what earlier tries recorded.

    :param store: ``context["task_state_store"]``, or ``None`` where Airflow has none.
    """

    def __init__(self, store: Any | None) -> None:
        self.store = store
        self._count = int(store.get(INDEX_KEY, 0) or 0) if store is not None else 0

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> SendLedger:
        """The ledger of the running task instance (an empty, inert one before Airflow 3.3)."""
        return cls(context.get("task_state_store"))

    @property
    def durable(self) -> bool:
        """Whether what is recorded survives a retry of the task."""
        return self.store is not None

    def earlier_report(self) -> SendReport:
        """What earlier tries recorded: accepted messages and ``UNCONFIRMED`` ones."""
        report = SendReport()
        for index in range(self._count):
            entry = self.store.get(BATCH_KEY.format(index)) if self.store is not None else None
            if not entry:
                continue
            report.task_ids.extend(t for t in entry.get("task_ids", []) if t not in report.task_ids)
            for internal_id, message_uuid in entry.get("accepted", {}).items():
                report.record(internal_id, message_uuid, None)
            for internal_id in entry.get("unconfirmed", []):
                if internal_id not in report.results:
                    report.record(internal_id, None, UNCONFIRMED)
        return report

    def record(self, batch: SendReport) -> None:
        """Write one batch's accepted and unconfirmed messages (nothing when there is no store)."""
        if self.store is None:
            return
        accepted = {k: v["message_uuid"] for k, v in batch.results.items() if v["error"] is None}
        unconfirmed = [k for k, v in batch.results.items() if v["error"] == UNCONFIRMED]
        if not accepted and not unconfirmed:
            return
        entry = {"task_ids": batch.task_ids, "accepted": accepted, "unconfirmed": unconfirmed}
        self.store.set(BATCH_KEY.format(self._count), entry)
        self._count += 1
        self.store.set(INDEX_KEY, self._count)
