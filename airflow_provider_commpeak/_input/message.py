"""
The one shape of a message, from validation to the wire.

Adding a request field: add it here (after ``message_content``, with a default), check it in
``validation.check_record``, and teach the sandbox to take it. Files, the spool and the request body
follow the tuple's fields.
"""

from __future__ import annotations

from typing import NamedTuple


class Message(NamedTuple):
    """
    A valid message, its number in international digits.

    :param internal_id: The caller's id of the message; empty only between validation and staging,
        for a message whose id is generated.
    :param sender: The sender name or number shown to the recipient.
    :param recipient_phone: The recipient's number, international digits without ``+``.
    :param message_content: The text.
    """

    internal_id: str
    sender: str
    recipient_phone: str
    message_content: str

    def payload(self) -> dict[str, str]:
        """The message as ``POST /simple_send/`` takes it."""
        return self._asdict()


#: The fields of one message, as CommPeak's ``POST /simple_send/`` takes them (and CSV columns).
MESSAGE_FIELDS: tuple[str, ...] = Message._fields

#: A valid message not sent on purpose: an earlier message of the send has its number and text.
DUPLICATE = "DUPLICATE"
#: A valid message not sent on purpose: its number is on the suppression list.
SUPPRESSED = "SUPPRESSED"
#: A valid message held back: its recipient's send window is closed now (sent when it opens).
WAITING = "WAITING"
