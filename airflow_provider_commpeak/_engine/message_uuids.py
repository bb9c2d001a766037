"""Where a sensor or trigger finds the uuids to wait for: a list, a send report, or a report file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_commpeak._engine.report import iter_report
from airflow_provider_commpeak._input.records import as_storage_path
from airflow_provider_commpeak.exceptions import CommPeakValidationError


def read_message_uuids(value: Any) -> list[str]:
    """
    Accept a list of uuids, a ``SendSmsOperator`` report or summary, or the path of a report file.

    From a report file (``report_path``, CSV or JSON Lines, local or ObjectStoragePath URL) the uuids
    of the accepted messages are read, streaming.

    :raises CommPeakValidationError: For anything else.
    """
    path = report_path_of(value)
    if path is not None:
        return _uuids_from_report(path)
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


def _uuids_from_report(path: Any) -> list[str]:
    try:
        return [r.message_uuid for r in iter_report(as_storage_path(path)) if r.accepted and r.message_uuid]
    except (OSError, ValueError) as exc:
        raise CommPeakValidationError(
            [f"message_uuids {str(path)[:80]!r} is a string, so a report file, but it cannot be read: {exc}"],
            what="arguments",
        ) from None
