"""
Phone numbers against the oracle, libphonenumber, across every region it knows.

For each region and each number type with an example number, the example written in national,
international and E.164 form must normalize to exactly the number libphonenumber says it is, or be
refused with a reason; a number is never sent to a different number. With ``default_region``, a
national number valid as an international number too (a different one) is refused as ambiguous.
"""

from __future__ import annotations

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from airflow_provider_commpeak._input.phones import PhoneProblem, normalize_phone

TYPES = [
    PhoneNumberType.FIXED_LINE,
    PhoneNumberType.MOBILE,
    PhoneNumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER,
    PhoneNumberType.UAN,
    PhoneNumberType.VOICEMAIL,
]


def _examples() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.append((region, number))
    return found


EXAMPLES = _examples()


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:]


def _oracle(written: str, region: str) -> str | None:
    """libphonenumber's verdict on a number written without a prefix, read with ``region``."""
    digits = "".join(ch for ch in written if ch.isdigit())
    readings = set()
    for text, reading_region in ((written, region), (f"+{digits}", None)):
        try:
            number = phonenumbers.parse(text, reading_region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            readings.add(_e164(number))
    return readings.pop() if len(readings) == 1 else None


def test_the_oracle_has_examples_for_every_region():
    assert len({region for region, _ in EXAMPLES}) >= 240
    assert len(EXAMPLES) > 1000


@pytest.mark.parametrize("form", [PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164])
def test_international_forms_keep_their_number_with_or_without_a_region(form):
    wrong = []
    for region, number in EXAMPLES:
        written = phonenumbers.format_number(number, form)
        for default_region in (None, region, "US"):
            try:
                got = normalize_phone(written, default_region)
            except PhoneProblem:
                continue  # refused with a reason: never sent anywhere
            if got != _e164(number):
                wrong.append((region, default_region, got))
    assert wrong == []


def test_national_forms_go_to_their_own_region_or_are_refused_as_ambiguous():
    wrong, ambiguous, refused = [], 0, 0
    for region, number in EXAMPLES:
        written = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        expected = _oracle(written, region)
        try:
            got = normalize_phone(written, region)
        except PhoneProblem as problem:
            ambiguous += "ambiguous" in str(problem)
            refused += 1
            if expected == _e164(number):
                wrong.append((region, "refused a number the oracle reads one way", str(problem)))
            continue
        if got != _e164(number) or got != expected:
            wrong.append((region, got, _e164(number)))
    assert wrong == []
    assert ambiguous == refused  # a valid example is refused only as ambiguous, never otherwise
    assert refused < len(EXAMPLES) // 20  # 17 of 1,129 with phonenumbers 9.0


def test_without_a_region_a_national_number_with_a_trunk_zero_is_refused():
    for _region, number in EXAMPLES:
        written = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        digits = "".join(ch for ch in written if ch.isdigit())
        if digits.startswith("0"):
            with pytest.raises(PhoneProblem):
                normalize_phone(written)


@pytest.mark.parametrize(
    ("written", "region", "expected"),
    [
        ("(202) 555-0123", "US", "12025550123"),  # was +20 (Egypt)
        ("312-555-0123", "US", "13125550123"),  # was +31 (Netherlands)
        ("138 1234 5678", "CN", "8613812345678"),  # was +1
        ("55 1234 5678", "MX", "525512345678"),  # was +55 (Brazil)
        ("612 345 678", "ES", "34612345678"),  # was +61 (Australia)
        ("11 91234-5678", "BR", "5511912345678"),  # was +1
        ("011 972 52 426 5292", "US", "972524265292"),  # the region's own international prefix
        ("972524265292", "US", "972524265292"),  # not valid in the US: the international reading
    ],
)
def test_the_probes_numbers_go_to_the_right_country(written, region, expected):
    assert normalize_phone(written, region) == expected


def test_a_number_valid_both_ways_is_refused_not_guessed():
    with pytest.raises(PhoneProblem, match="ambiguous.*region CA.*\\+60"):
        normalize_phone("604 555 1234", "CA")
    assert normalize_phone("+1 604 555 1234", "CA") == "16045551234"
