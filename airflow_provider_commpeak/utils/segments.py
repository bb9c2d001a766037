"""SMS segment counting (GSM 03.38 and UCS-2), for logging what a batch will cost."""

from __future__ import annotations

import math
from typing import NamedTuple

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Characters of the GSM 7-bit extension table: each takes two septets (escape + char).
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


def count_segments(text: str) -> SegmentCount:
    """
    Count the SMS segments ``text`` takes.

    GSM-7 when every character is in the GSM 03.38 tables (extension characters count twice): one
    segment up to 160 septets, else 153 per segment. Otherwise UCS-2, counted in UTF-16 code units
    (an emoji counts twice): one segment up to 70, else 67 per segment.
    """
    if text.isascii() and text.isprintable() and "`" not in text:  # the common case, at C speed
        septets = len(text) + sum(text.count(char) for char in _ASCII_EXTENSION)
        segments = 1 if septets <= GSM7_SINGLE else math.ceil(septets / GSM7_MULTI)
        return SegmentCount("GSM-7", septets, segments)
    chars = set(text)
    if chars <= GSM7_ALL:
        septets = len(text) + sum(text.count(char) for char in chars & GSM7_EXTENSION)
        segments = 1 if septets <= GSM7_SINGLE else math.ceil(septets / GSM7_MULTI)
        return SegmentCount("GSM-7", septets, segments)
    units = len(text.encode("utf-16-le")) // 2
    segments = 1 if units <= UCS2_SINGLE else math.ceil(units / UCS2_MULTI)
    return SegmentCount("UCS-2", units, segments)
