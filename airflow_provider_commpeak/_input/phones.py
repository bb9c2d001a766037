"""
Phone numbers: normalised to international digits and checked with ``phonenumbers`` (the Python port
of Google's libphonenumber), behind a fast path for numbers already in clean international form.

Whether a number is *possible* depends only on its country calling code and its length, so the
fast path asks ``phonenumbers`` once per (code, length) and caches the verdict: a million numbers
cost a million dictionary lookups, not a million parses (docs/benchmarks.md has the figures). A
number whose national part starts with its country's trunk prefix (``+61 0...``) goes the slow way:
libphonenumber drops that prefix, and so do we.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: Characters people put in phone numbers that carry no digits.
_SEPARATORS = re.compile(r"[\s\-().\[\]/]")
#: E.164 allows at most 15 digits; no real number, country code included, has fewer than 7.
MIN_DIGITS = 7
MAX_DIGITS = 15
#: With ``default_region``, a number may start with the region's own international call prefix (``011``, ``810``).
MAX_DIALLED_DIGITS = MAX_DIGITS + 4

_REASONS = {
    1: "no country uses its calling code",
    2: "too short for its country",
    3: "too long for its country",
    4: "a local-only number (give it with its area code)",
    5: "not a length its country uses",
}


class PhoneProblem(ValueError):
    """Why a value is not a phone number we can send to (never quotes the number in full)."""


@lru_cache(maxsize=1)
def _country_codes() -> frozenset[str]:
    import phonenumbers

    return frozenset(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@lru_cache(maxsize=4096)
def _possible_reason(country_code: str, national_length: int) -> int:
    """libphonenumber's verdict for any number of this country code and national length."""
    import phonenumbers

    number = phonenumbers.PhoneNumber(country_code=int(country_code), national_number=int("9" * national_length))
    return int(phonenumbers.is_possible_number_with_reason(number))


def country_calling_code(digits: str) -> str:
    """The country calling code of a number in international digits (``"972"``), or ``""``."""
    codes = _country_codes()
    return next((digits[:n] for n in (1, 2, 3) if digits[:n] in codes), "")


@lru_cache(maxsize=512)
def _trunk_prefix(country_code: str) -> re.Pattern[str] | None:
    """The pattern of the national (trunk) prefix libphonenumber strips for this country code."""
    import phonenumbers

    region = phonenumbers.region_code_for_country_code(int(country_code))
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(int(country_code), region)
    pattern = getattr(metadata, "national_prefix_for_parsing", None)
    return re.compile(pattern) if pattern else None


def _parse_international(digits: str) -> str:
    """The slow, exact way: libphonenumber parses ``+digits``."""
    import phonenumbers

    try:
        number = phonenumbers.parse(f"+{digits}")
    except phonenumbers.NumberParseException:
        raise PhoneProblem(_REASONS[1]) from None
    reason = int(phonenumbers.is_possible_number_with_reason(number))
    if reason:
        raise PhoneProblem(f"{_REASONS[reason]} (+{number.country_code})")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]


def _check_international(digits: str) -> str:
    """Return the number (international digits, no ``+``) if it is possible, else raise."""
    if not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
        raise PhoneProblem(f"has {len(digits)} digits; an international number has {MIN_DIGITS}-{MAX_DIGITS}")
    country_code = country_calling_code(digits)
    if not country_code:
        raise PhoneProblem(_REASONS[1])
    trunk = _trunk_prefix(country_code)
    if trunk is not None and trunk.match(digits, len(country_code)):
        return _parse_international(digits)
    reason = _possible_reason(country_code, len(digits) - len(country_code))
    if reason:
        raise PhoneProblem(f"{_REASONS[reason]} (+{country_code})")
    return digits


def _valid_reading(text: str, region: str | None) -> tuple[str | None, int]:
    """
    libphonenumber's reading of ``text`` (``region``'s national form, or ``+text`` when ``None``).

    Returns the number in international digits if it is *valid* (not merely of a possible length),
    else ``None`` with the reason it is not possible (0 when possible but not valid).
    """
    import phonenumbers

    try:
        number = phonenumbers.parse(text if region else f"+{text}", region)
    except phonenumbers.NumberParseException:
        return None, 1
    if phonenumbers.is_valid_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:], 0
    return None, int(phonenumbers.is_possible_number_with_reason(number))


def _possibly_international(digits: str) -> bool:
    """The cached length check: only a number that passes it can be a valid international one."""
    try:
        _check_international(digits)
    except PhoneProblem:
        return False
    return True


def _check_with_region(digits: str, region: str) -> str:
    """
    A number written without an international prefix, read with ``default_region``.

    Its national reading wins when valid; otherwise its international reading must be valid. A
    number valid both ways, as two different numbers, is refused: guessing would text a stranger.
    """
    national, national_reason = _valid_reading(digits, region)
    international = _valid_reading(digits, None)[0] if _possibly_international(digits) else None
    if national and international and national != international:
        raise PhoneProblem(
            f"is ambiguous: valid as a national number of region {region} (+{country_calling_code(national)}) "
            f"and as an international number (+{country_calling_code(international)}); write it with + "
            "or 00 and its country code"
        )
    if national or international:
        return national or international  # type: ignore[return-value]
    if national_reason:
        raise PhoneProblem(f"{_REASONS[national_reason]} (region {region})")
    raise PhoneProblem(f"is not a valid number of region {region}, nor a valid international number")


def check_region(region: object) -> str | None:
    """Validate a ``default_region`` argument: ``None`` or a two-letter region code such as ``"IL"``."""
    if region is None or region == "":
        return None
    import phonenumbers

    if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"default_region must be a two-letter region code such as 'IL' or 'GB', got {region!r}")
    return region.upper()


def normalize_phone(raw: object, default_region: str | None = None) -> str:
    """
    Return the number as international digits (``"972524265292"``), or raise :class:`PhoneProblem`.

    Accepts ``+972 (52) 426-5292``, ``00972...``, ``+00972...``, digits with spaces, dashes, dots,
    slashes and brackets, and a non-negative ``int``. A number with a leading ``0`` is national:
    ``default_region`` (e.g. ``"IL"``) says whose; without it such a number is refused and a number
    without ``+`` or ``00`` is read as international. With ``default_region``, a number written
    without an international prefix is read as a national number of that region first: that
    reading wins when libphonenumber finds it valid; otherwise the international reading must be
    valid; a number valid both ways (as two different numbers) is refused as ambiguous.

    :param raw: The number as the user gave it.
    :param default_region: The region of national numbers (ISO 3166 two-letter code), already
        checked by :func:`check_region`.
    """
    if default_region is None and isinstance(raw, str) and raw.isascii() and raw.isdigit() and raw[:1] != "0":
        return _check_international(raw)  # clean international digits: the fast path
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise PhoneProblem(f"must be a string or an int, got {type(raw).__name__}")
    if isinstance(raw, int) and raw < 0:
        raise PhoneProblem("is a negative number")
    text = _SEPARATORS.sub("", str(raw))
    if not text:
        raise PhoneProblem("is empty")
    international = text.startswith(("+", "00"))
    if text.startswith("+"):
        text = text[1:]
    if text.startswith("00"):
        text = text[2:]
    if not text.isascii() or not text.isdigit():
        raise PhoneProblem("holds characters other than digits, +, spaces, dashes, dots and brackets")
    if international:
        return _check_international(text)
    if default_region is not None:
        if len(text) > MAX_DIALLED_DIGITS:
            raise PhoneProblem(f"has {len(text)} digits; a phone number has at most {MAX_DIGITS}")
        return _check_with_region(text, default_region)
    if text.startswith("0"):
        raise PhoneProblem(
            "looks national (it starts with 0): write it in international form (+972...) or set "
            "default_region (e.g. 'IL')"
        )
    return _check_international(text)


_DIGIT_RUN = re.compile(r"\d{7,}")


def mask_digit_runs(text: str) -> str:
    """``text`` with every run of 7+ digits masked like a phone number (for paths and ids in errors)."""
    return _DIGIT_RUN.sub(lambda match: mask_phone(match.group()), text)


def mask_phone(number: object) -> str:
    """
    Mask a phone number for logs and error texts: ``"972524265292"`` -> ``"9725****292"``.

    Long numbers keep their first four and last three characters, short ones two and two; whatever
    is passed, at least four characters are hidden and the length is not revealed.
    """
    text = str(number)
    if len(text) >= 11:
        return f"{text[:4]}****{text[-3:]}"
    if len(text) >= 6:
        return f"{text[:2]}****{text[-2:]}"
    return "****"
