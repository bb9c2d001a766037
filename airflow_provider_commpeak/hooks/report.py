"""The outcome of a send: one entry per message, keyed by ``internal_id``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

#: The error given to messages whose send had an unknown outcome (never resent automatically).
UNCONFIRMED = "UNCONFIRMED"
#: The error CommPeak gives a message it refused for its rate limit.
RATE_LIMIT = "RATE_LIMIT"
#: The error given to messages the API left out of every answer (so it never accepted them).
NOT_ACCEPTED = "NOT_ACCEPTED"
#: The error given to messages never tried because the send stopped first (e.g. the key was refused).
NOT_SENT = "NOT_SENT"


@dataclass
class SendReport:
    """
    What a send did with each message. Holds no phone number and no message text.

    :param task_ids: CommPeak's ``task_id`` of each batch request that got an answer.
    :param results: ``{internal_id: {"message_uuid": str | None, "error": str | None}}`` in input order.
    """

    task_ids: list[str] = field(default_factory=list)
    results: dict[str, dict[str, str | None]] = field(default_factory=dict)
    #: SMS segments of the messages sent (for logs; not part of the XCom form).
    segments: int = 0

    def record(self, internal_id: str, message_uuid: str | None, error: str | None) -> None:
        """Record one message's outcome (a later record replaces an earlier one)."""
        self.results[internal_id] = {"message_uuid": message_uuid, "error": error}

    def merge(self, other: SendReport) -> None:
        """Add another report's task ids and results to this one."""
        self.task_ids.extend(task_id for task_id in other.task_ids if task_id not in self.task_ids)
        self.results.update(other.results)
        self.segments += other.segments

    @property
    def message_uuids(self) -> list[str]:
        """The uuids of every accepted message, in input order."""
        return [r["message_uuid"] for r in self.results.values() if r["error"] is None and r["message_uuid"]]

    @property
    def accepted(self) -> int:
        """How many messages the API accepted."""
        return sum(1 for r in self.results.values() if r["error"] is None and r["message_uuid"])

    @property
    def failed(self) -> int:
        """How many messages were not accepted (or whose outcome is unknown)."""
        return len(self.results) - self.accepted

    def errors_by_kind(self) -> Counter[str]:
        """Count the failed messages by error, e.g. ``{"RATE_LIMIT": 3, "UNCONFIRMED": 100}``."""
        return Counter(str(r["error"]) for r in self.results.values() if r["error"] is not None)

    def describe_errors(self) -> str:
        """The error counts in words: ``"3 RATE_LIMIT, 100 UNCONFIRMED"``."""
        return ", ".join(f"{count} {kind}" for kind, count in sorted(self.errors_by_kind().items()))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form pushed to XCom (see the README for each key)."""
        return {
            "task_ids": list(self.task_ids),
            "message_uuids": self.message_uuids,
            "results": {key: dict(value) for key, value in self.results.items()},
            "accepted": self.accepted,
            "failed": self.failed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SendReport:
        """Rebuild a report from :meth:`to_dict`'s output."""
        return cls(task_ids=list(data.get("task_ids", [])), results=dict(data.get("results", {})))


#: The columns of a report file, in order.
REPORT_COLUMNS = ("internal_id", "message_uuid", "error")


@dataclass
class SendSummary:
    """
    The outcome of a send whose per-message results went to a file (too many for XCom).

    :param report_path: Where each message's result was written (CSV or JSON Lines).
    :param messages: How many messages the source held.
    """

    report_path: str
    messages: int = 0
    accepted: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, batch: SendReport) -> None:
        """Count one batch's outcome."""
        self.accepted += batch.accepted
        self.errors.update(batch.errors_by_kind())

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def describe_errors(self) -> str:
        return ", ".join(f"{count} {kind}" for kind, count in sorted(self.errors.items()))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able form pushed to XCom."""
        return {
            "report_path": self.report_path,
            "messages": self.messages,
            "accepted": self.accepted,
            "failed": self.failed,
            "errors": dict(self.errors),
        }


class ReportWriter:
    """Writes each message's result to a CSV or JSON Lines file as batches complete."""

    def __init__(self, path: Any) -> None:
        from airflow_provider_commpeak.utils.sources import detect_format, open_path

        self.format = detect_format(path)
        self._handle = open_path(path, "w")
        self._csv = None
        if self.format == "csv":
            import csv

            self._csv = csv.writer(self._handle)
            self._csv.writerow(REPORT_COLUMNS)

    def write(self, batch: SendReport) -> None:
        for internal_id, result in batch.results.items():
            if self._csv is not None:
                self._csv.writerow((internal_id, result["message_uuid"] or "", result["error"] or ""))
            else:
                self._handle.write(json.dumps({"internal_id": internal_id, **result}) + "\n")

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def iter_report(path: Any) -> Iterator[tuple[str, str | None, str | None]]:
    """Yield ``(internal_id, message_uuid, error)`` from a report file, streaming."""
    from airflow_provider_commpeak.utils.sources import read_records

    for record in read_records(path):
        if isinstance(record, dict):
            yield (
                str(record.get("internal_id")),
                record.get("message_uuid") or None,
                record.get("error") or None,
            )
