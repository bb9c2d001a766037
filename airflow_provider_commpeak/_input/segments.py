"""How many SMS segments a text takes (GSM 03.38 7-bit, or UCS-2), as carriers bill them."""

from __future__ import annotations

import math
import unicodedata
from typing import NamedTuple

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Characters of the GSM 7-bit extension table: each takes two septets (escape + char), and the two
#: are never split between segments.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION
#: The extension characters that are printable ASCII (every other printable ASCII character but
#: the backtick is in the basic table).
_ASCII_EXTENSION = "^{}\\[~]|"

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67


class SegmentCount(NamedTuple):
    """How a text is encoded and how many SMS segments it takes."""

    encoding: str
    units: int
    segments: int


def _parts(widths: list[int] | None, units: int, single: int, multi: int) -> int:
    """
    Segments for ``units`` code units, where ``widths`` (if given) are each character's width.

    One segment up to ``single`` units; beyond, parts of ``multi`` units filled greedily, and a
    two-unit character (a GSM escape pair, a UTF-16 surrogate pair) that does not fit in what is
    left of a part starts the next one.
    """
    if units <= single:
        return 1
    if widths is None:
        return math.ceil(units / multi)
    parts, used = 1, 0
    for width in widths:
        if used + width > multi:
            parts, used = parts + 1, 0
        used += width
    return parts


def count_segments(text: str) -> SegmentCount:
    """
    Count the SMS segments ``text`` takes.

    GSM-7 when every character is in the GSM 03.38 tables (an extension character such as ``€`` takes
    two septets): one segment up to 160 septets, else parts of 153. Otherwise UCS-2, counted in
    UTF-16 code units (an emoji takes two): one segment up to 70, else parts of 67. Neither an escape
    pair nor a surrogate pair is ever split between two parts, so a text can need one part more
    than its length alone says.
    """
    if text.isascii() and text.isprintable() and "`" not in text:  # the common case, at C speed
        doubled = sum(text.count(char) for char in _ASCII_EXTENSION)
        septets = len(text) + doubled
        widths = [2 if char in _ASCII_EXTENSION else 1 for char in text] if doubled else None
        return SegmentCount("GSM-7", septets, _parts(widths, septets, GSM7_SINGLE, GSM7_MULTI))
    chars = set(text)
    if chars <= GSM7_ALL:
        extension = chars & GSM7_EXTENSION
        widths = [2 if char in extension else 1 for char in text] if extension else None
        septets = len(text) + sum(text.count(char) for char in extension)
        return SegmentCount("GSM-7", septets, _parts(widths, septets, GSM7_SINGLE, GSM7_MULTI))
    astral = any(ord(char) > 0xFFFF for char in chars)
    widths = [2 if ord(char) > 0xFFFF else 1 for char in text] if astral else None
    units = len(text) + (sum(1 for char in text if ord(char) > 0xFFFF) if astral else 0)
    return SegmentCount("UCS-2", units, _parts(widths, units, UCS2_SINGLE, UCS2_MULTI))


def ucs2_reason(text: str) -> str:
    """
    The first character that makes ``text`` UCS-2, by code point and name, never quoted:
    ``"U+2019 RIGHT SINGLE QUOTATION MARK at position 12"`` (0-based); ``""`` for a GSM-7 text.
    """
    for position, char in enumerate(text):
        if char not in GSM7_ALL:
            name = unicodedata.name(char, "")
            return f"U+{ord(char):04X}{' ' + name if name else ''} at position {position}"
    return ""
