"""A dry run prices a campaign (messages, segments, encodings, countries) and sends nothing."""

from __future__ import annotations

import json

import pytest
from requests_mock import ANY

from airflow_provider_commpeak.exceptions import CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from helpers import message
from helpers.fakes import make_context


@pytest.fixture
def nothing_sent(monkeypatch, requests_mock):
    """No connection at all, and any request fails the test."""
    monkeypatch.delenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", raising=False)
    requests_mock.register_uri(ANY, ANY, status_code=599)
    yield requests_mock
    assert requests_mock.call_count == 0, "a dry run sent a request"


def test_the_operator_counts_and_sends_nothing(nothing_sent):
    context = make_context()
    result = SendSmsOperator(
        task_id="send",
        recipients=["972524265292", "+44 7700 900123", "12025550123", "052-426-5292"],
        message_content="Shalom שלום",
        sender="S",
        default_region="IL",
        dry_run=True,
    ).execute(context)
    shin = "U+05E9 HEBREW LETTER SHIN at position 7"
    assert result == {
        "dry_run": True,
        "messages": 4,
        "segments": 3,  # 052-426-5292 in IL is 972524265292: the duplicate is not sent, not counted
        "encodings": {"UCS-2": 4},
        "country_codes": {"972": 2, "44": 1, "1": 1},
        "given_ids": 0,
        "duplicates": 1,
        "ucs2_reasons": {f"message {i}": shin for i in range(4)},
    }
    assert context["ti"].xcom["segments"] == 3


def test_a_dry_run_still_refuses_bad_input(nothing_sent):
    with pytest.raises(CommPeakValidationError):
        SendSmsOperator(task_id="send", messages=[message(0, phone="12")], dry_run=True).execute(make_context())


def test_a_file_dry_run(nothing_sent, tmp_path, logs):
    path = tmp_path / "audience.jsonl"
    path.write_text(
        "".join(
            json.dumps(message(i, phone=f"4477009{i:05d}", message_content="x" * 200)) + "\n" for i in range(50_000)
        )
    )
    report = CommPeakHook().dry_run(path)
    assert (report.messages, report.segments, report.country_codes) == (50_000, 100_000, {"44": 50_000})
    assert "Dry run, nothing sent: 50,000 message(s), 100,000 SMS segment(s) (50,000 GSM-7)" in logs.text


def test_max_segments_refuses_long_texts_before_anything_is_sent(nothing_sent):
    op = SendSmsOperator(
        task_id="send",
        messages=[message(0), message(1, message_content="x" * 161), message(2, message_content="ש" * 71)],
        max_segments=1,
    )
    with pytest.raises(CommPeakValidationError) as info:
        op.execute(make_context())
    assert info.value.problems == [
        "message 1: message_content takes 2 SMS segments (GSM-7), more than max_segments=1",
        "message 2: message_content takes 2 SMS segments (UCS-2), more than max_segments=1",
    ]


def test_the_dry_run_names_the_character_that_forces_ucs2(nothing_sent, logs):
    stats = CommPeakHook().dry_run(
        [
            {"recipient_phone": "972524265292", "message_content": "It\u2019s ready", "sender": "S"},
            {"recipient_phone": "972545330008", "message_content": "plain GSM text", "sender": "S"},
        ]
    )  # no internal_id and no id_namespace: works as the docs show it
    assert stats.ucs2_reasons == {"message 0": "U+2019 RIGHT SINGLE QUOTATION MARK at position 2"}
    assert "UCS-2 because of message 0: U+2019 RIGHT SINGLE QUOTATION MARK at position 2" in logs.text
    assert "ready" not in logs.text  # the text itself is never quoted


def test_the_dry_run_without_generated_ids_still_asks_for_them_when_told(nothing_sent):
    with pytest.raises(CommPeakValidationError, match="internal_id is missing"):
        CommPeakHook().dry_run(
            [{"recipient_phone": "972524265292", "message_content": "x", "sender": "S"}], id_namespace=None
        )
