"""
The outcome of a send, one result per message, and the two places results go: a report in memory
(small sends, for XCom) or a report file (campaigns).

Neither holds a phone number or a message text: ``internal_id``, ``message_uuid`` and an error code.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from airflow_provider_commpeak._input.message import DUPLICATE, SUPPRESSED, WAITING
from airflow_provider_commpeak._input.records import detect_format, file_format, is_local, open_path, read_file_records

#: A message whose send had an unknown outcome: it may have been accepted. Never resent automatically.
UNCONFIRMED = "UNCONFIRMED"
#: CommPeak refused the message for its rate limit (given up after ``rate_limit_timeout``).
RATE_LIMIT = "RATE_LIMIT"
#: The API left the message out of its answers until the send gave up: it was not accepted.
NOT_ACCEPTED = "NOT_ACCEPTED"
#: Never sent: the send stopped first (a refused key, an unreachable API, a task timeout).
NOT_SENT = "NOT_SENT"
#: Errors that are a decision, not a failure: never counted against ``allowed_failures``.
NOT_FAILURES = frozenset({DUPLICATE, SUPPRESSED, WAITING})
#: Not sent: the messages' validity (``valid_until`` / ``valid_for``) ended before it was accepted.
EXPIRED = "EXPIRED"
#: The API could not be reached (connection refused, DNS, TLS handshake, proxy) after every retry.
CONNECTION_ERROR = "CONNECTION_ERROR"


def is_rate_limit(error: object) -> bool:
    """Whether a per-message error is CommPeak's ``RATE_LIMIT`` (compared ignoring case and spaces)."""
    return isinstance(error, str) and error.strip().upper() == RATE_LIMIT


#: Errors after which a message surely did not reach CommPeak: a task retry sends it again.
RESENDABLE = frozenset({RATE_LIMIT, NOT_ACCEPTED, NOT_SENT, CONNECTION_ERROR, EXPIRED})


class MessageResult(NamedTuple):
    """
    What became of one message: a uuid when accepted, else an error code.

    Its fields are the columns of report files, ledger records and the XCom results, by name: a new
    response field is a new field here (plus where the pipeline reads it from the answer).

    :param internal_id: The message's id.
    :param message_uuid: CommPeak's uuid of the accepted message.
    :param error: Why it was not accepted (``None`` when it was).
    :param task_id: CommPeak's ``task_id`` of the request whose answer settled it.
    """

    internal_id: str
    message_uuid: str | None
    error: str | None
    task_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None and bool(self.message_uuid)


#: The fields a kept result holds (all but its id), and their values when not given.
_RESULT_FIELDS = MessageResult._fields[1:]
_NO_FIELDS = {name: MessageResult._field_defaults.get(name) for name in _RESULT_FIELDS}


def describe_counts(counts: Counter[str]) -> str:
    """Counts in words, largest first: ``"100 UNCONFIRMED, 3 RATE_LIMIT"``."""
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@dataclass
class SendOutcome:
    """
    What a send did with its messages: one shape whatever the sink.

    Counts always; the per-message results when they are kept in memory (small sends, for XCom);
    the report file's path when they were written to one (campaigns). Neither holds a phone number
    or a message text.

    :param messages: How many messages the send settled.
    :param accepted: How many the API accepted.
    :param errors: The others, counted by error code.
    :param task_ids: CommPeak's ``task_id`` of each batch request that got an answer.
    :param results: ``{internal_id: {"message_uuid": str | None, "error": str | None, "task_id":
        str | None}}`` (the fields of a result) in input order, or ``None`` when they
        went to ``report_path``.
    :param report_path: Where each message's result was written (CSV or JSON Lines), if it was.
    """

    messages: int = 0
    accepted: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    task_ids: list[str] = field(default_factory=list)
    results: dict[str, dict[str, str | None]] | None = field(default_factory=dict)
    report_path: str | None = None
    #: When messages still ``WAITING`` for their send window can go (ISO 8601, UTC), if any wait.
    resume_at: str | None = None
    #: Send requests made, messages the API pushed back (each time), and the SMS segments of the
    #: messages validated for sending: for metrics and lineage (not in XCom).
    requests: int = 0
    refused: int = 0
    segments: int | None = None

    def record(self, internal_id: str, message_uuid: str | None, error: str | None, *more: str | None) -> None:
        """
        Count one message's outcome; keep it when results are kept (a later record replaces an earlier).

        Takes the fields of a result in order: ``outcome.record(*result)``.
        """
        if self.results is not None:
            earlier = self.results.get(internal_id)
            if earlier is not None:
                self._count(earlier["message_uuid"], earlier["error"], -1)
            kept = dict(_NO_FIELDS)
            kept.update(zip(_RESULT_FIELDS, (message_uuid, error, *more), strict=False))
            self.results[internal_id] = kept
        self._count(message_uuid, error, 1)

    def _count(self, message_uuid: str | None, error: str | None, step: int) -> None:
        self.messages += step
        if error is None and message_uuid:
            self.accepted += step
            return
        self.errors[str(error)] += step
        if not self.errors[str(error)]:
            del self.errors[str(error)]

    @property
    def failed(self) -> int:
        """How many messages were not accepted, or whose outcome is unknown (not those left out on purpose)."""
        return self.messages - self.accepted - self.not_sent_on_purpose

    @property
    def not_sent_on_purpose(self) -> int:
        """Messages left out by decision (``DUPLICATE``, ``SUPPRESSED``), not failures."""
        return sum(self.errors[kind] for kind in NOT_FAILURES if kind in self.errors)

    @property
    def message_uuids(self) -> list[str]:
        """The uuids of every accepted message, in input order (empty when results went to a file)."""
        kept = (self.results or {}).values()
        return [r["message_uuid"] for r in kept if r["error"] is None and r["message_uuid"]]

    def errors_by_kind(self) -> Counter[str]:
        """The failed messages counted by error, e.g. ``{"RATE_LIMIT": 3, "UNCONFIRMED": 100}``."""
        return Counter(self.errors)

    def describe_errors(self) -> str:
        """The error counts in words: ``"100 UNCONFIRMED, 3 RATE_LIMIT"``."""
        return describe_counts(self.errors)

    def to_dict(self) -> dict[str, Any]:
        """
        The JSON-able form pushed to XCom: the report ``{"task_ids", "message_uuids", "results",
        "accepted", "failed"}``, or, when the results went to a file, the summary ``{"report_path",
        "messages", "accepted", "failed", "errors"}``.
        """
        if self.results is None:
            return {
                "report_path": self.report_path,
                "messages": self.messages,
                "accepted": self.accepted,
                "failed": self.failed,
                "errors": dict(self.errors),
            }
        return {
            "task_ids": list(self.task_ids),
            "message_uuids": self.message_uuids,
            "results": {key: dict(value) for key, value in self.results.items()},
            "accepted": self.accepted,
            "failed": self.failed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SendOutcome:
        """Rebuild an outcome from the report form of :meth:`to_dict`."""
        outcome = cls(task_ids=list(data.get("task_ids", [])))
        for internal_id, result in dict(data.get("results", {})).items():
            outcome.record(internal_id, *(result.get(name) for name in MessageResult._fields[1:]))
        return outcome


#: Deprecated names (1.1.0): every send returns a :class:`SendOutcome` now. A file-backed one has a
#: ``report_path`` and ``results`` is ``None``.
SendReport = SendOutcome
SendSummary = SendOutcome


class ResultSink(Protocol):
    """Where the pipeline puts each settled message (called under the pipeline's lock)."""

    def add(self, seq: int, result: MessageResult) -> None: ...

    def add_task_id(self, task_id: str) -> None: ...

    def close(self) -> None: ...


class OutcomeSink:
    """Collects a :class:`SendOutcome`, the per-message results in memory in input order (for XCom)."""

    def __init__(self) -> None:
        self.outcome = SendOutcome()
        self._kept: dict[str, tuple[int, MessageResult]] = {}
        self._task_ids: dict[str, None] = {}

    def add(self, seq: int, result: MessageResult) -> None:
        self._kept[result.internal_id] = (seq, result)

    def add_task_id(self, task_id: str) -> None:
        self._task_ids[task_id] = None

    def close(self) -> None:
        """Count every result, once, in input order."""
        self.outcome.task_ids = list(self._task_ids)
        for _, result in sorted(self._kept.values(), key=lambda item: item[0]):
            self.outcome.record(*result)
        self._kept = {}


#: The columns of a report file, in order: the fields of a result, then the input file's line of the
#: message (empty for a list).
REPORT_COLUMNS = (*MessageResult._fields, "line")


class FileSink(OutcomeSink):
    """Writes each message's result to a CSV or JSON Lines report as it settles, and counts it there."""

    def __init__(self, path: Any, line_of: Callable[[int], int | None] | None = None) -> None:
        super().__init__()
        self._line_of = line_of
        # absolute: a sensor on another worker, or the triggerer, reads it from another directory
        where = os.path.abspath(os.fspath(path)) if is_local(path) else str(path)
        self.outcome = SendOutcome(results=None, report_path=where)
        self.format = detect_format(path)
        writer = file_format(self.format).writer
        self._handle = open_path(path, "w")
        self._write = writer(self._handle, REPORT_COLUMNS)

    def add(self, seq: int, result: MessageResult) -> None:
        self._write({**result._asdict(), "line": self._line_of(seq) if self._line_of else None})
        self.outcome.record(*result)

    def close(self) -> None:
        self.outcome.task_ids = list(self._task_ids)
        self._handle.close()


def is_report_file(path: Any, columns: tuple[str, ...] | None = None) -> bool:
    """
    Whether ``path`` holds a CommPeak report, or is empty: its first line names the report's
    columns, or the first of them (a report written before a column was added).
    """
    columns = columns or REPORT_COLUMNS

    try:
        with open_path(path, "rb") as handle:
            first = handle.readline(4096).decode("utf-8-sig", "replace").strip()
    except OSError:
        return False
    if not first:
        return True
    names = first.split(",")
    if len(names) >= 2 and names == list(columns[: len(names)]):
        return True
    try:
        keys = list(json.loads(first))
    except (ValueError, TypeError, RecursionError):
        return False
    return len(keys) >= 2 and set(keys) <= set(columns) and columns[0] in keys


def iter_report(path: Any) -> Iterator[MessageResult]:
    """Yield each result of a report file, streaming."""
    for result, _line in iter_report_rows(path):
        yield result


def iter_report_rows(path: Any) -> Iterator[tuple[MessageResult, str | None]]:
    """Yield each result of a report file with its input line (``None`` when it has none), streaming."""
    for record in read_file_records(path, columns=REPORT_COLUMNS, required=("internal_id",)):
        fields = record.fields if isinstance(record.fields, dict) else None
        if fields is not None and fields.get("internal_id") is not None:
            result = MessageResult(str(fields["internal_id"]), *(fields.get(name) or None for name in _RESULT_FIELDS))
            line = fields.get("line")
            yield result, (str(line) if line not in (None, "") else None)


#: The columns of a status report file (the sensor's delivery report): each message's uuid and final
#: status, joined with its ``internal_id``, its input ``line`` and, for a message never accepted,
#: the send's error.
STATUS_COLUMNS = ("message_uuid", "status", "internal_id", "line", "send_error")


def write_status_report(path: Any, rows: Iterator[Mapping[str, Any]]) -> int:
    """Write rows keyed by :data:`STATUS_COLUMNS` to a CSV or JSON Lines file; return how many."""
    writer = file_format(detect_format(path)).writer
    count = 0
    with open_path(path, "w") as handle:
        write = writer(handle, STATUS_COLUMNS)
        for row in rows:
            write(row)
            count += 1
    return count
