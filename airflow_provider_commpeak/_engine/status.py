"""
A tolerant reader for ``POST /messages_status/`` answers, whose shape CommPeak does not document.

Read entry by entry: one entry it cannot read leaves that message ``unknown`` (still pending); only
a body of no known shape at all is an error, named by its shape (never quoted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_commpeak._engine.classify import describe_shape
from airflow_provider_commpeak.exceptions import CommPeakApiError

#: Statuses that mean delivered, and that mean it never will be (the sensor's defaults).
DEFAULT_SUCCESS_STATUSES = ("delivered",)
DEFAULT_FAILURE_STATUSES = ("sent_failed", "undelivered", "no_routes", "rejected")
#: The status of a message the answer does not name: still pending.
UNKNOWN = "unknown"

LIST_KEYS = ("messages", "data", "results")
ID_KEYS = ("message_uuid", "uuid", "id")
STATUS_KEYS = ("status", "message_status", "delivery_status")
_STATUS = re.compile(r"^[a-z][a-z0-9_ \-]{0,39}$")


def _first(entry: Mapping[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        if entry.get(key) is not None:
            return entry[key]
    return None


def _status(value: Any) -> str | None:
    """A status as the sensor compares it: lower case, or ``None`` if it is not a readable one."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if _STATUS.match(text) else None


#: The statuses CommPeak shows for stream messages; any other is logged once and stays pending.
KNOWN_STATUSES = frozenset({"sent", UNKNOWN, *DEFAULT_SUCCESS_STATUSES, *DEFAULT_FAILURE_STATUSES})


class StatusAnswer:
    """
    The statuses an answer names, and how many of its entries could not be read.

    uuids compare case-insensitively (RFC 4122): an answer naming ``0562F2AA-...`` answers a question
    about ``0562f2aa-...``; ``statuses`` is keyed by the uuid as it was asked.

    :param asked: The uuids asked about.
    :param statuses: ``{uuid: status}`` for each entry read.
    :param unreadable: Entries skipped (no id, or a status that is not a word).
    """

    def __init__(self, asked: Iterable[str] = ()) -> None:
        self.asked = {uuid.lower(): uuid for uuid in asked}
        self.statuses: dict[str, str] = {}
        self.unreadable = 0

    def names(self, uuid: object) -> bool:
        return isinstance(uuid, str) and uuid.strip().lower() in self.asked

    def add(self, uuid: Any, status: Any) -> None:
        readable = _status(status)
        if not isinstance(uuid, str) or readable is None:
            self.unreadable += 1
            return
        key = uuid.strip().lower()
        self.statuses[self.asked.get(key, uuid)] = readable

    @property
    def unfamiliar(self) -> set[str]:
        """Statuses read that CommPeak is not known to use (they leave their messages pending)."""
        return set(self.statuses.values()) - KNOWN_STATUSES


def _from_entries(entries: list[Any], answer: StatusAnswer) -> bool:
    """Read a list of ``{id: ..., status: ...}`` entries; ``False`` if no entry has the form at all."""
    readable = 0
    for entry in entries:
        uuid = _first(entry, ID_KEYS) if isinstance(entry, Mapping) else None
        if isinstance(uuid, str):
            readable += 1
        answer.add(uuid, _first(entry, STATUS_KEYS) if isinstance(entry, Mapping) else None)
    return readable > 0 or not entries


def _from_mapping(body: Mapping[str, Any], answer: StatusAnswer) -> bool:
    """
    Read ``{uuid: "status"}`` or ``{uuid: {"status": ...}}``; ``False`` if not of that form.

    A non-empty mapping naming none of the asked uuids is not of that form: it is some other object,
    such as ``{"detail": "..."}``, which would otherwise leave every message pending.
    """
    if body and not any(answer.names(key) for key in body):
        return False
    for uuid, value in body.items():
        if answer.names(uuid):
            answer.add(uuid, _first(value, STATUS_KEYS) if isinstance(value, Mapping) else value)
    return True


def read_statuses(body: Any, message_uuids: Iterable[str]) -> StatusAnswer:
    """
    Read a ``messages_status`` answer.

    Accepted shapes: ``{"messages": [...]}`` (or the list under ``data``/``results``), a bare list,
    each entry naming its id under ``message_uuid``/``uuid``/``id`` and its status under
    ``status``/``message_status``/``delivery_status``; or a mapping ``{uuid: "status"}`` or
    ``{uuid: {"status": ...}}``, bare or under ``messages``/``data``/``results``.

    :raises CommPeakApiError: When the body has none of these shapes; the text names the shape it got.
    """
    answer = StatusAnswer(message_uuids)
    if isinstance(body, list):
        known = _from_entries(body, answer)
    elif isinstance(body, Mapping):
        inner = [body[key] for key in LIST_KEYS if isinstance(body.get(key), (list, Mapping))]
        if inner and isinstance(inner[0], list):
            known = _from_entries(inner[0], answer)
        else:
            known = (bool(inner) and _from_mapping(inner[0], answer)) or _from_mapping(body, answer)
    else:
        known = False
    if not known:
        raise CommPeakApiError(
            f"Cannot read the messages_status answer: got {describe_shape(body)}",
            detail=describe_shape(body),
        )
    return answer


def parse_statuses(body: Any, message_uuids: Iterable[str]) -> dict[str, str]:
    """Map each requested uuid to its lower-case status; uuids the answer does not name are ``unknown``."""
    message_uuids = list(message_uuids)
    found = read_statuses(body, message_uuids).statuses
    return {uuid: found.get(uuid, UNKNOWN) for uuid in message_uuids}
