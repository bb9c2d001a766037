from __future__ import annotations

import pytest

from airflow_provider_commpeak.exceptions import CommPeakValidationError
from airflow_provider_commpeak.hooks.backoff import backoff_delay, parse_retry_after
from airflow_provider_commpeak.utils.allowance import check_allowed_failures, failures_allowed
from airflow_provider_commpeak.utils.delivery import judge_delivery
from airflow_provider_commpeak.utils.phones import mask_phone, normalize_phone
from airflow_provider_commpeak.utils.segments import count_segments


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("972524265292", "972524265292"),
        ("+972 54-533-0008", "972545330008"),
        ("00972 (52) 426 5292", "972524265292"),
        ("(555) 000.0001", "5550000001"),
        (972524265292, "972524265292"),
        ("1234567", "1234567"),
        ("123456789012345", "123456789012345"),
    ],
)
def test_normalize_phone_accepts(raw, expected):
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "123456",
        "1234567890123456",
        "97252426529a",
        "",
        "   ",
        None,
        3.5,
        True,
        "++972524265292",
        "٩٧٢٥٢٤٢٦٥٢٩٢",
    ],
)
def test_normalize_phone_refuses(raw):
    assert normalize_phone(raw) is None


def test_mask_phone_hides_the_middle():
    assert mask_phone("972524265292") == "9725****292"
    assert mask_phone("1234567") == "12****67"
    assert mask_phone("12") == "****"


def test_segments_gsm7_single_and_multi():
    assert count_segments("a" * 160) == ("GSM-7", 160, 1)
    assert count_segments("a" * 161) == ("GSM-7", 161, 2)
    assert count_segments("a" * 306).segments == 2
    assert count_segments("a" * 307).segments == 3


def test_segments_extension_characters_count_twice():
    assert count_segments("€" * 80) == ("GSM-7", 160, 1)
    assert count_segments("{" * 81).segments == 2


def test_segments_ucs2():
    assert count_segments("ש" * 70) == ("UCS-2", 70, 1)
    assert count_segments("ש" * 71).segments == 2
    assert count_segments("ש" * 134).segments == 2
    assert count_segments("😀" * 35) == ("UCS-2", 70, 1)  # each emoji is two UTF-16 units


def test_backoff_grows_with_jitter_and_cap():
    for attempt in range(1, 8):
        delay = backoff_delay(attempt, base=1.0, cap=10.0)
        ceiling = min(10.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_retry_after_seconds_date_and_garbage():
    assert parse_retry_after("3", cap=60) == 3.0
    assert parse_retry_after("120", cap=60) == 60
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", cap=60) == 0.0
    assert parse_retry_after("soon", cap=60) is None
    assert parse_retry_after(None, cap=60) is None


@pytest.mark.parametrize("value", [-1, 1.0, 0.0, 1.5, "3", None, True])
def test_allowed_failures_refuses(value):
    with pytest.raises(CommPeakValidationError):
        check_allowed_failures(value)


def test_allowed_failures_count_and_fraction():
    check_allowed_failures(0)
    check_allowed_failures(0.25)
    assert failures_allowed(3, 100) == 3
    assert failures_allowed(0.25, 10) == 2


def test_judge_delivery():
    statuses = {"a": "delivered", "b": "undelivered", "c": "sent", "d": "unknown"}
    verdict = judge_delivery(
        statuses, success_statuses={"delivered"}, failure_statuses={"undelivered"}, allowed_failures=1
    )
    assert (verdict.succeeded, verdict.failed, verdict.pending, verdict.done) == (1, 1, 2, False)
    verdict = judge_delivery(
        statuses, success_statuses={"delivered"}, failure_statuses={"undelivered"}, allowed_failures=0
    )
    assert verdict.too_many_failures and verdict.done


def test_segments_fast_path_agrees_with_the_tables():
    from airflow_provider_commpeak.utils.segments import _ASCII_EXTENSION, GSM7_BASIC, GSM7_EXTENSION

    printable_ascii = {chr(c) for c in range(32, 127)}
    assert printable_ascii - {"`"} - set(_ASCII_EXTENSION) <= GSM7_BASIC
    assert set(_ASCII_EXTENSION) <= GSM7_EXTENSION
    assert count_segments("a{b}") == ("GSM-7", 6, 1)
    assert count_segments("line\nbreak") == ("GSM-7", 10, 1)  # slow path, same table
    assert count_segments("`") == ("UCS-2", 1, 1)
