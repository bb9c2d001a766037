"""Phone numbers (libphonenumber behind a fast path) and SMS segment counting."""

from __future__ import annotations

import random

import phonenumbers
import pytest

from airflow_provider_commpeak._input.phones import (
    PhoneProblem,
    check_region,
    mask_phone,
    normalize_phone,
)
from airflow_provider_commpeak._input.segments import count_segments


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("972524265292", None, "972524265292"),
        ("+972 54-533-0008", None, "972545330008"),
        ("00972 (52) 426 5292", None, "972524265292"),
        ("+00972524265292", None, "972524265292"),
        ("+1 (555) 000.0001", None, "15550000001"),
        (972524265292, None, "972524265292"),
        ("052-426-5292", "IL", "972524265292"),
        ("0524265292", "IL", "972524265292"),
        ("07400 123456", "GB", "447400123456"),
        ("2125551234", "US", "12125551234"),  # not possible as +212..., so national
        ("972524265292", "IL", "972524265292"),  # not valid as an IL national number: international
        ("011 972 52 426 5292", "US", "972524265292"),  # the US international prefix
        ("+61 0412 345 678", None, "61412345678"),  # a trunk 0 after the country code is dropped
    ],
)
def test_normalize_phone_accepts(raw, region, expected):
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("123456", "has 6 digits"),
        ("1234567890123456", "has 16 digits"),
        ("97252426529a", "characters other than digits"),
        ("", "is empty"),
        ("   ", "is empty"),
        (None, "must be a string or an int"),
        (3.5, "must be a string or an int"),
        (True, "must be a string or an int"),
        (-972524265292, "negative"),
        ("++972524265292", "characters other than digits"),
        ("٩٧٢٥٢٤٢٦٥٢٩٢", "characters other than digits"),
        ("052-426-5292", "looks national"),
        ("9991234567", "no country uses"),
        ("97252", "has 5 digits"),
        ("+1 555 000 000", "too short for its country \\(\\+1\\)"),
        ("+1 555 000 0001 234", "too long"),
    ],
)
def test_normalize_phone_refuses_with_a_reason(raw, reason):
    with pytest.raises(PhoneProblem, match=reason):
        normalize_phone(raw)


def test_national_numbers_need_a_known_region():
    assert check_region("il") == "IL"
    assert check_region(None) is None
    for bad in ("Israel", "XX", 972):
        with pytest.raises(ValueError, match="default_region"):
            check_region(bad)


def test_the_fast_path_agrees_with_libphonenumber():
    rng = random.Random(11)
    for _ in range(20000):
        digits = str(rng.randrange(10**6, 10**15))
        try:
            ours = normalize_phone(digits)
        except PhoneProblem:
            ours = None
        try:
            number = phonenumbers.parse("+" + digits)
        except phonenumbers.NumberParseException:
            theirs = None
        else:
            possible = phonenumbers.is_possible_number_with_reason(number) == 0
            theirs = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:] if possible else None
        assert ours == theirs, digits


def test_mask_phone_hides_the_middle():
    assert mask_phone("972524265292") == "9725****292"
    assert mask_phone("1234567") == "12****67"
    assert mask_phone("12") == "****"


#: (text, encoding, units, segments): the reference table, escape and surrogate pairs included.
SEGMENT_CASES = [
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),
    ("{" * 81, "GSM-7", 162, 2),
    ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),  # the escape pair would straddle parts 1 and 2
    ("a" * 151 + "€" + "a" * 153, "GSM-7", 306, 2),  # it ends part 1 exactly
    ("a" * 152 + "{" + "a" * 152, "GSM-7", 306, 3),  # the same through the ASCII fast path
    ("ש" * 70, "UCS-2", 70, 1),
    ("ש" * 71, "UCS-2", 71, 2),
    ("ש" * 134, "UCS-2", 134, 2),
    ("😀" * 35, "UCS-2", 70, 1),
    ("ש" * 66 + "😀" + "ש" * 66, "UCS-2", 134, 3),  # the surrogate pair would straddle parts
    ("ש" * 65 + "😀" + "ש" * 67, "UCS-2", 134, 2),
    ("a{b}", "GSM-7", 6, 1),
    ("line\nbreak", "GSM-7", 10, 1),
    ("`", "UCS-2", 1, 1),
]


@pytest.mark.parametrize(("text", "encoding", "units", "segments"), SEGMENT_CASES)
def test_segments_match_the_reference_table(text, encoding, units, segments):
    assert count_segments(text) == (encoding, units, segments)


def test_segments_fast_path_agrees_with_the_tables():
    from airflow_provider_commpeak._input.segments import _ASCII_EXTENSION, GSM7_BASIC, GSM7_EXTENSION

    printable_ascii = {chr(c) for c in range(32, 127)}
    assert printable_ascii - {"`"} - set(_ASCII_EXTENSION) <= GSM7_BASIC
    assert set(_ASCII_EXTENSION) <= GSM7_EXTENSION
