"""Validation of outgoing messages: every problem reported at once, before anything is sent."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from airflow_provider_commpeak.exceptions import CommPeakValidationError
from airflow_provider_commpeak.utils.phones import MAX_DIGITS, MIN_DIGITS, mask_phone, normalize_phone
from airflow_provider_commpeak.utils.sources import InvalidRecord

#: The fields of one message, as CommPeak's ``POST /simple_send/`` takes them.
MESSAGE_FIELDS = ("internal_id", "sender", "recipient_phone", "message_content")

_FIELD_SET = frozenset(MESSAGE_FIELDS)

#: An internal_id longer than this is refused (a generous bound; CommPeak documents none).
MAX_INTERNAL_ID_LENGTH = 128


def _describe(value: object) -> str:
    return type(value).__name__


def check_message(
    position: int,
    message: object,
    *,
    default_sender: str | None,
    make_internal_id: Callable[[int], str] | None,
    problems: list[str],
) -> dict[str, str] | None:
    """
    Check one message and return it ready to send (digits-only number, string fields).

    Problems are appended to ``problems`` (each naming ``position``) and ``None`` is returned.

    :param position: The message's index in the input, for error texts.
    :param message: The message as the user gave it.
    :param default_sender: The sender for messages that name none.
    :param make_internal_id: Builds an ``internal_id`` for a message that has none; ``None`` makes
        a missing ``internal_id`` an error.
    :param problems: Where problems are collected.
    """
    where = f"message {position}"
    if isinstance(message, InvalidRecord):
        problems.append(f"{where}: {message.reason}")
        return None
    if not isinstance(message, Mapping):
        problems.append(
            f"{where}: expected a mapping of {', '.join(MESSAGE_FIELDS)}, got {_describe(message)}"
        )
        return None
    found: list[str] = []
    if message.keys() - _FIELD_SET:
        unknown = sorted(str(key) for key in message if key not in _FIELD_SET)
        found.append(f"unknown field(s) {', '.join(unknown)} (allowed: {', '.join(MESSAGE_FIELDS)})")

    raw_phone = message.get("recipient_phone")
    phone = normalize_phone(raw_phone)
    if raw_phone is None or raw_phone == "":
        found.append("recipient_phone is missing or empty")
    elif phone is None:
        found.append(
            f"recipient_phone {mask_phone(raw_phone)!r} is not a phone number "
            f"({MIN_DIGITS}-{MAX_DIGITS} digits after dropping +, 00, spaces, dashes and brackets)"
        )

    content = message.get("message_content")
    if not isinstance(content, str) or not content.strip():
        found.append("message_content is missing, empty or not a string")

    sender = message.get("sender") or default_sender
    if not isinstance(sender, str) or not sender.strip():
        found.append("sender is missing (set it on the message or pass a default sender)")

    internal_id = message.get("internal_id")
    if internal_id is None or internal_id == "":
        internal_id = make_internal_id(position) if make_internal_id else None
    if isinstance(internal_id, bool) or not isinstance(internal_id, (str, int)):
        found.append("internal_id is missing or not a string")
    elif len(str(internal_id)) > MAX_INTERNAL_ID_LENGTH:
        found.append(f"internal_id is longer than {MAX_INTERNAL_ID_LENGTH} characters")

    if found:
        problems.extend(f"{where}: {text}" for text in found)
        return None
    return {
        "internal_id": str(internal_id),
        "sender": str(sender),
        "recipient_phone": str(phone),
        "message_content": str(content),
    }


def iter_checked_messages(
    messages: Iterable[Any],
    *,
    default_sender: str | None = None,
    make_internal_id: Callable[[int], str] | None = None,
    problems: list[str],
) -> Iterator[dict[str, str]]:
    """
    Yield each valid message ready to send; collect every problem, duplicates included, in ``problems``.

    Streams: memory grows with the set of ``internal_id`` strings, not with the messages.
    """
    first_seen: dict[str, int] = {}
    for position, message in enumerate(messages):
        checked = check_message(
            position,
            message,
            default_sender=default_sender,
            make_internal_id=make_internal_id,
            problems=problems,
        )
        if checked is None:
            continue
        internal_id = checked["internal_id"]
        if internal_id in first_seen:
            problems.append(
                f"message {position}: internal_id {internal_id!r} duplicates message {first_seen[internal_id]}"
            )
            continue
        first_seen[internal_id] = position
        yield checked


def expand_recipients(recipients: object, message_content: object) -> list[dict[str, Any]]:
    """
    One message per phone number, all with ``message_content`` (the operator's and notifier's shorthand).

    :raises CommPeakValidationError: When ``recipients`` is not a list of numbers (a lone string
        is refused rather than split into characters).
    """
    if (
        recipients is None
        or isinstance(recipients, (str, bytes, Mapping))
        or not isinstance(recipients, Iterable)
    ):
        raise CommPeakValidationError(
            [f"recipients must be a list of phone numbers, got {_describe(recipients)}"]
        )
    return [{"recipient_phone": number, "message_content": message_content} for number in recipients]


def validate_messages(
    messages: object,
    *,
    default_sender: str | None = None,
    make_internal_id: Callable[[int], str] | None = None,
) -> list[dict[str, str]]:
    """
    Check every message and return them ready to send, or raise one error listing every problem.

    :param messages: A list (or any iterable other than a string or a mapping) of message mappings.
    :param default_sender: The sender for messages that name none.
    :param make_internal_id: Builds an ``internal_id`` for a message that has none; without it a
        missing ``internal_id`` is an error.
    :raises CommPeakValidationError: Listing every problem with its message's position.
    """
    if messages is None or isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
        raise CommPeakValidationError([f"expected a list of messages, got {_describe(messages)}"])
    problems: list[str] = []
    checked = list(
        iter_checked_messages(
            messages, default_sender=default_sender, make_internal_id=make_internal_id, problems=problems
        )
    )
    if not checked and not problems:
        problems.append("the list of messages is empty")
    if problems:
        raise CommPeakValidationError(problems)
    return checked


#: Problems kept in memory while scanning a file; past this only their number is counted.
MAX_KEPT_PROBLEMS = 1000


class DuplicateFinder:
    """
    Finds duplicate ``internal_id``s among millions in a few MiB.

    First pass: each id's hash marks one bit of a 64 Mbit map; an id landing on a marked bit
    becomes a candidate (a duplicate, or a hash collision). Second pass over the ids, only if there
    are candidates: exact comparison among the candidates alone.
    """

    BITS = 1 << 26

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS // 8)
        self.candidates: set[int] = set()

    def add(self, internal_id: str) -> None:
        digest = hash(internal_id)
        byte, bit = divmod(digest % self.BITS, 8)
        if self._bits[byte] & (1 << bit):
            self.candidates.add(digest)
        else:
            self._bits[byte] |= 1 << bit

    def confirm(self, ids: Iterable[tuple[int, str]]) -> list[str]:
        """Problems for the real duplicates among ``(position, internal_id)`` pairs."""
        if not self.candidates:
            return []
        first_seen: dict[str, int] = {}
        problems = []
        for position, internal_id in ids:
            if hash(internal_id) not in self.candidates:
                continue
            if internal_id in first_seen:
                problems.append(
                    f"message {position}: internal_id {internal_id!r} duplicates message {first_seen[internal_id]}"
                )
            else:
                first_seen[internal_id] = position
        return problems


def scan_messages(
    open_records: Callable[[], Iterable[Any]],
    *,
    default_sender: str | None = None,
    make_internal_id: Callable[[int], str] | None = None,
) -> int:
    """
    Validate a source that can be read again (a file), in constant memory; return how many messages.

    :param open_records: Returns a fresh iterator over the records each time it is called.
    :raises CommPeakValidationError: Listing the problems (the first thousand, and how many more).
    """
    problems: list[str] = []
    extra = 0
    finder = DuplicateFinder()
    count = 0
    for position, record in enumerate(open_records()):
        count += 1
        found: list[str] = []
        checked = check_message(
            position, record, default_sender=default_sender, make_internal_id=make_internal_id, problems=found
        )
        if checked is not None:
            finder.add(checked["internal_id"])
        if len(problems) < MAX_KEPT_PROBLEMS:
            problems.extend(found)
        else:
            extra += len(found)

    def ids() -> Iterator[tuple[int, str]]:
        for position, record in enumerate(open_records()):
            checked = check_message(
                position,
                record,
                default_sender=default_sender,
                make_internal_id=make_internal_id,
                problems=[],
            )
            if checked is not None:
                yield position, checked["internal_id"]

    problems.extend(finder.confirm(ids()))
    if count == 0:
        problems.append("the source holds no messages")
    if problems or extra:
        if extra:
            problems.append(f"... and {extra} more problem(s) not listed")
        raise CommPeakValidationError(problems)
    return count
