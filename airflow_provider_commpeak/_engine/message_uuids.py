"""Where a sensor or trigger finds the uuids to wait for: a list, a send report, or a report file."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from airflow_provider_commpeak._engine.report import iter_report, iter_report_rows
from airflow_provider_commpeak._input.records import as_storage_path
from airflow_provider_commpeak._input.validation import show_id
from airflow_provider_commpeak.exceptions import CommPeakValidationError


class SentMessage(NamedTuple):
    """One message of a send, as its report tells it: enough to find its row again."""

    message_uuid: str | None
    internal_id: str | None
    line: str | None
    send_error: str | None


def iter_sent(value: Any) -> Iterator[SentMessage]:
    """
    Every message of the send ``value`` describes, streaming: from a report file (in the order the
    messages settled; its ``line`` column gives the input order), a report's ``results`` (input
    order), or (a bare list of uuids) the uuids alone.
    """
    path = report_path_of(value)
    if path is not None:
        for result, line in iter_report_rows(as_storage_path(path)):
            uuid = result.message_uuid if result.accepted else None
            yield SentMessage(uuid, result.internal_id, line, None if result.accepted else result.error)
        return
    if isinstance(value, Mapping) and isinstance(value.get("results"), Mapping):
        for internal_id, result in value["results"].items():
            accepted = result.get("error") is None and bool(result.get("message_uuid"))
            uuid = result.get("message_uuid") if accepted else None
            yield SentMessage(uuid, str(internal_id), None, None if accepted else result.get("error"))
        return
    for uuid in read_message_uuids(value):
        yield SentMessage(uuid, None, None, None)


def name_messages(value: Any, uuids: Collection[str], *, limit: int = 20) -> list[str]:
    """
    How a user finds up to ``limit`` of ``uuids`` in their input: ``"internal_id 'row-7' (line 9)"``
    (an id's runs of 7+ digits masked), else the uuid itself. Never a number or a text.
    """
    wanted = {uuid.lower() for uuid in uuids}
    named: list[str] = []
    for sent in iter_sent(value):
        if sent.message_uuid is None or sent.message_uuid.lower() not in wanted:
            continue
        if sent.internal_id is None:
            named.append(sent.message_uuid)
        else:
            named.append(f"internal_id {show_id(sent.internal_id)}" + (f" (line {sent.line})" if sent.line else ""))
        if len(named) >= limit:
            break
    return named


def read_message_uuids(value: Any) -> list[str]:
    """
    Accept a list of uuids, a ``SendSmsOperator`` report or summary, or the path of a report file.

    From a report file (``report_path``, CSV or JSON Lines, local or ObjectStoragePath URL) the uuids
    of the accepted messages are read, streaming.

    :raises CommPeakValidationError: For anything else.
    """
    path = report_path_of(value)
    if path is not None:
        return list(_uuids_in_report(path))
    if isinstance(value, Mapping):
        value = value["message_uuids"]
    if value is None or isinstance(value, bytes) or not isinstance(value, Sequence):
        raise CommPeakValidationError(
            [f"message_uuids must be a list of uuids, a send report or a report path, got {type(value).__name__}"],
            what="arguments",
        )
    bad = [i for i, uuid in enumerate(value) if not isinstance(uuid, str) or not uuid]
    if bad:
        raise CommPeakValidationError(
            [f"message_uuids[{i}] is not a non-empty string" for i in bad[:20]], what="arguments"
        )
    return list(dict.fromkeys(value))


def iter_message_uuids(value: Any) -> Iterator[str]:
    """
    Like :func:`read_message_uuids`, one uuid at a time: a report file is streamed, never held as a
    list (a trigger waiting for a million messages keeps them packed, 16 bytes each). Duplicates are
    not removed here.
    """
    path = report_path_of(value)
    yield from read_message_uuids(value) if path is None else _uuids_in_report(path)


def report_path_of(value: Any) -> Any:
    """The report file ``value`` names (a path, or a summary's ``report_path``), else ``None``."""
    if isinstance(value, Mapping):
        if "message_uuids" in value:
            return None
        if "report_path" in value:
            return value["report_path"]
        raise CommPeakValidationError(
            ["message_uuids: a mapping must be a SendSmsOperator report ('message_uuids') or summary ('report_path')"],
            what="arguments",
        )
    if isinstance(value, str) or hasattr(value, "open"):
        return value
    return None


def _uuids_in_report(path: Any) -> Iterator[str]:
    """The uuids of the accepted messages in a report file, streamed."""
    try:
        for row in iter_report(as_storage_path(path)):
            if row.accepted and row.message_uuid:
                yield row.message_uuid
    except (OSError, ValueError) as exc:
        raise CommPeakValidationError(
            [f"message_uuids {str(path)[:80]!r} is a string, so a report file, but it cannot be read: {exc}"],
            what="arguments",
        ) from None
