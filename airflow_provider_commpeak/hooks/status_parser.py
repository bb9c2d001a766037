"""
A tolerant reader for ``POST /messages_status/`` answers, whose shape CommPeak does not document.

Shared by :class:`~airflow_provider_commpeak.hooks.commpeak.CommPeakHook` and the async
:class:`~airflow_provider_commpeak.triggers.commpeak.SmsStatusTrigger`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_commpeak.exceptions import CommPeakApiError

#: The status of a message the answer does not name: still pending.
UNKNOWN = "unknown"

LIST_KEYS = ("messages", "data", "results")
ID_KEYS = ("message_uuid", "uuid", "id")
STATUS_KEYS = ("status", "message_status", "delivery_status")

#: How much of an unreadable body an error text quotes.
EXCERPT_LENGTH = 200


def excerpt(body: object, limit: int = EXCERPT_LENGTH) -> str:
    """A short, single-line excerpt of a body for error texts."""
    text = body if isinstance(body, str) else repr(body)
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _first(entry: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if entry.get(key) is not None:
            return entry[key]
    return None


def _from_entries(entries: list[Any]) -> dict[str, str] | None:
    """Read a list of ``{id: ..., status: ...}`` entries; ``None`` if any entry is not of that form."""
    found: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, Mapping):
            return None
        uuid, status = _first(entry, ID_KEYS), _first(entry, STATUS_KEYS)
        if not isinstance(uuid, str) or not isinstance(status, str):
            return None
        found[uuid] = status
    return found


def _from_mapping(body: Mapping[str, Any], asked: set[str]) -> dict[str, str] | None:
    """
    Read ``{uuid: "status"}`` or ``{uuid: {"status": ...}}``; ``None`` if not of that form.

    A non-empty mapping naming none of the asked uuids is not of that form either: it is some other
    object, such as ``{"detail": "..."}``, which would otherwise leave every message pending.
    """
    if body and asked.isdisjoint(str(key) for key in body):
        return None
    found: dict[str, str] = {}
    for uuid, value in body.items():
        status = _first(value, STATUS_KEYS) if isinstance(value, Mapping) else value
        if not isinstance(status, str):
            return None
        found[str(uuid)] = status
    return found


def _read(body: Any, asked: set[str]) -> dict[str, str] | None:
    if isinstance(body, list):
        return _from_entries(body)
    if not isinstance(body, Mapping):
        return None
    for key in LIST_KEYS:
        if isinstance(body.get(key), list):
            return _from_entries(body[key])
    return _from_mapping(body, asked)


def parse_statuses(body: Any, message_uuids: Iterable[str]) -> dict[str, str]:
    """
    Map each requested uuid to its lower-case status; uuids the answer does not name are ``unknown``.

    Accepted shapes: ``{"messages": [...]}`` (or the list under ``data``/``results``), a bare list,
    each entry naming its id under ``message_uuid``/``uuid``/``id`` and its status under
    ``status``/``message_status``/``delivery_status``; or a mapping ``{uuid: "status"}`` or
    ``{uuid: {"status": ...}}``.

    :raises CommPeakApiError: When the body is of none of these shapes; the text names what it got.
    """
    message_uuids = list(message_uuids)
    found = _read(body, set(message_uuids))
    if found is None:
        raise CommPeakApiError(
            f"Cannot read the messages_status answer: got {type(body).__name__} {excerpt(body)}",
            detail=excerpt(body),
        )
    lowered = {uuid: status.strip().lower() for uuid, status in found.items()}
    return {uuid: lowered.get(uuid, UNKNOWN) for uuid in message_uuids}
