"""Phone number normalisation and masking."""

from __future__ import annotations

import re

#: Characters people put in phone numbers that carry no digits.
_SEPARATORS = re.compile(r"[\s\-().\[\]]")
MIN_DIGITS = 7
MAX_DIGITS = 15


def normalize_phone(raw: object) -> str | None:
    """
    Return the number as digits only, or ``None`` when it is not a 7-15 digit number.

    A leading ``+`` or ``00``, spaces, dashes, dots and brackets are dropped: ``"+972 (52) 426-5292"``
    becomes ``"972524265292"``. An ``int`` is accepted (numbers read from a CSV); anything else is not.
    """
    if isinstance(raw, str) and raw.isascii() and raw.isdigit():  # the common case, already clean
        return raw if MIN_DIGITS <= len(raw) <= MAX_DIGITS else None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        return None
    text = _SEPARATORS.sub("", str(raw).strip())
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not text.isascii() or not text.isdigit() or not MIN_DIGITS <= len(text) <= MAX_DIGITS:
        return None
    return text


def mask_phone(number: object) -> str:
    """
    Mask a phone number for logs and error texts: ``"972524265292"`` -> ``"9725****292"``.

    Long numbers keep their first four and last three digits, short ones two and two; whatever is
    passed, at least four characters are hidden and the length is not revealed.
    """
    text = str(number)
    if len(text) >= 11:
        return f"{text[:4]}****{text[-3:]}"
    if len(text) >= 6:
        return f"{text[:2]}****{text[-2:]}"
    return "****"
