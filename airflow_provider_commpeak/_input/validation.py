"""Checking one message: every problem of it at once, none of them quoting a number or a text."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_commpeak._input.message import MESSAGE_FIELDS, Message
from airflow_provider_commpeak._input.phones import PhoneProblem, mask_digit_runs, mask_phone, normalize_phone
from airflow_provider_commpeak._input.records import Record
from airflow_provider_commpeak.exceptions import CommPeakValidationError

_FIELD_SET = frozenset(MESSAGE_FIELDS)
#: An internal_id longer than this is refused (a generous bound; CommPeak documents none).
MAX_INTERNAL_ID_LENGTH = 128
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


def show_id(internal_id: object) -> str:
    """An ``internal_id`` for an error text: quoted, cut short, a run of 7+ digits masked."""
    text = mask_digit_runs(str(internal_id))
    return repr(text if len(text) <= 40 else f"{text[:40]}...")


def _describe(value: object) -> str:
    return type(value).__name__


def _unsendable(text: str) -> str | None:
    """Why a text cannot go on the wire (UTF-8), or ``None``: a lone surrogate is an emoji cut in half."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"holds a character that cannot be sent at position {exc.start} (a lone UTF-16 surrogate: "
            "an emoji or other character cut in half upstream?)"
        )
    return None


def _field_name(key: object) -> str:
    return repr(key) if isinstance(key, str) and _IDENTIFIER.match(key) else "an unnamed field"


def check_record(
    record: Record,
    *,
    default_sender: str | None,
    default_region: str | None,
    reserved_id_prefix: str | None = None,
) -> Message | list[str]:
    """
    Check one record; return the message ready to send, or its problems (each naming where it is).

    :param record: The record as read from the input.
    :param default_sender: The sender of a message that names none.
    :param default_region: The region of national numbers (``None``: national numbers are refused).
    :param reserved_id_prefix: ``internal_id``s starting with this are refused (the prefix of the
        ids generated for this send); ``None`` when ids are not generated.
    """
    where = record.where
    if record.problem is not None:
        return [record.problem if record.problem.startswith("line") else f"{where}: {record.problem}"]
    message = record.fields
    if not isinstance(message, Mapping):
        return [f"{where}: expected a mapping of {', '.join(MESSAGE_FIELDS)}, got {_describe(message)}"]
    found: list[str] = []
    if message.keys() - _FIELD_SET:
        unknown = sorted({_field_name(key) for key in message if key not in _FIELD_SET})
        found.append(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(MESSAGE_FIELDS)})")

    raw_phone = message.get("recipient_phone")
    phone = None
    if raw_phone is None or (isinstance(raw_phone, str) and not raw_phone.strip()):
        found.append("recipient_phone is missing or empty")
    else:
        try:
            phone = normalize_phone(raw_phone, default_region)
        except PhoneProblem as problem:
            shown = f" {mask_phone(raw_phone)!r}" if isinstance(raw_phone, (str, int)) else ""
            found.append(f"recipient_phone{shown} {problem}")

    content = message.get("message_content")
    if not isinstance(content, str) or not content.strip():
        found.append("message_content is missing, empty or not a string")
    elif (why := _unsendable(content)) is not None:
        found.append(f"message_content {why}")

    sender = message.get("sender") or default_sender
    if not isinstance(sender, str) or not sender.strip():
        found.append("sender is missing (set it on the message or pass a default sender)")
    elif (why := _unsendable(sender)) is not None:
        found.append(f"sender {why}")

    internal_id = message.get("internal_id")
    if internal_id is not None and internal_id != "":
        if isinstance(internal_id, bool) or not isinstance(internal_id, (str, int)):
            found.append(f"internal_id must be a string, got {_describe(internal_id)}")
        else:
            internal_id = str(internal_id)
            if len(internal_id) > MAX_INTERNAL_ID_LENGTH:
                found.append(f"internal_id is longer than {MAX_INTERNAL_ID_LENGTH} characters")
            elif (why := _unsendable(internal_id)) is not None:
                found.append(f"internal_id {why}")
            elif reserved_id_prefix and internal_id.startswith(reserved_id_prefix):
                found.append(
                    f"internal_id {show_id(internal_id)} starts with {reserved_id_prefix!r}, the prefix of "
                    "the ids this task generates"
                )
    elif reserved_id_prefix is None:
        found.append("internal_id is missing")
        internal_id = None
    else:
        internal_id = None

    if found:
        return [f"{where}: {text}" for text in found]
    assert phone is not None
    assert isinstance(content, str)
    assert isinstance(sender, str)
    return Message("" if internal_id is None else str(internal_id), sender, phone, content)


def expand_recipients(recipients: object, message_content: object) -> list[dict[str, Any]]:
    """
    One message per phone number, all with ``message_content`` (the operator's and notifier's shorthand).

    :raises CommPeakValidationError: When ``recipients`` is not an ordered collection of numbers: a
        lone string is refused rather than split into characters, and a ``set`` because its order
        changes from one process to the next.
    """
    if (
        recipients is None
        or isinstance(recipients, (str, bytes, Mapping, set, frozenset))
        or not isinstance(recipients, Iterable)
    ):
        hint = " (a set has no order: pass a list)" if isinstance(recipients, (set, frozenset)) else ""
        raise CommPeakValidationError(
            [f"recipients must be a list of phone numbers, got {_describe(recipients)}{hint}"]
        )
    return [{"recipient_phone": number, "message_content": message_content} for number in recipients]
