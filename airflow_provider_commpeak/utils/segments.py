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
    septets = 0
    for char in text:
        if char in GSM7_BASIC:
            septets += 1
        elif char in GSM7_EXTENSION:
            septets += 2
        else:
            units = len(text.encode("utf-16-le")) // 2
            segments = 1 if units <= UCS2_SINGLE else math.ceil(units / UCS2_MULTI)
            return SegmentCount("UCS-2", units, segments)
    segments = 1 if septets <= GSM7_SINGLE else math.ceil(septets / GSM7_MULTI)
    return SegmentCount("GSM-7", septets, segments)
