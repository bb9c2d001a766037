"""Every invalid input fails with CommPeakValidationError naming the positions, and sends nothing."""

from __future__ import annotations

import pytest
from requests_mock import ANY

from airflow_provider_commpeak.exceptions import CommPeakValidationError
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from helpers import message
from helpers.fakes import make_context

TEN_THOUSAND_WITH_DUPLICATES = [message(i) for i in range(9_998)] + [message(17), message(9_997)]

BAD_INPUTS = {
    "None from XCom": (None, "expected a list of messages, got NoneType"),
    "a string instead of a list": ("972524265292", "expected a list of messages, got str"),
    "a dict instead of a list": (message(0), "expected a list of messages, got dict"),
    "an int from XCom": (42, "expected a list of messages, got int"),
    "an empty list": ([], "the list of messages is empty"),
    "a list of strings": (["972524265292"], "message 0: expected a mapping"),
    "letters in the number": ([message(0, phone="97252426529O")], "message 0: recipient_phone"),
    "6 digits": ([message(0), message(1, phone="123456")], "message 1: recipient_phone"),
    "16 digits": ([message(0, phone="1234567890123456")], "message 0: recipient_phone"),
    "a negative number": ([message(0, phone=-972524265292)], "message 0: recipient_phone"),
    "a national number, no region": ([message(0, phone="052-426-5292")], "default_region"),
    "no such country code": ([message(0, phone="+999 1234 5678")], "no country uses"),
    "too short for its country": ([message(0, phone="+1 555 000 000")], "too short for its country"),
    "empty number": ([message(0, phone="")], "message 0: recipient_phone is missing or empty"),
    "empty text": ([message(0, message_content="")], "message 0: message_content"),
    "text not a string": ([message(0, message_content=5)], "message 0: message_content"),
    "empty sender": ([message(0, sender="")], "message 0: sender is missing"),
    "unknown key": ([message(0, priority="high")], "message 0: unknown field(s) 'priority'"),
    "an id too long": ([message(0, internal_id="x" * 129)], "longer than 128"),
    "an emoji cut in half in the text (the 1,000th message)": (
        [message(i) for i in range(999)] + [message(999, message_content="Hi \ud83d")],
        "message 999: message_content holds a character that cannot be sent at position 3",
    ),
    "a lone surrogate in the sender": ([message(0, sender="S\udc00")], "message 0: sender holds a character"),
    "a lone surrogate in the id": ([message(0, internal_id="a\ud800")], "message 0: internal_id holds a character"),
    "duplicates among 10,000": (
        TEN_THOUSAND_WITH_DUPLICATES,
        "message 9998: internal_id 'm17' duplicates message 17",
    ),
}


@pytest.fixture
def no_request(commpeak_conn, requests_mock):
    """Any request fails the test: bad input must be refused before one."""
    requests_mock.register_uri(ANY, ANY, status_code=599)
    return requests_mock


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_before_any_request(no_request, case):
    messages, expected = BAD_INPUTS[case]
    op = SendSmsOperator(task_id="send", messages=[message(0)])
    op.messages = messages  # what template rendering of an XComArg leaves there at run time
    with pytest.raises(CommPeakValidationError) as info:
        op.execute(make_context())
    assert any(expected in problem for problem in info.value.problems), info.value.problems
    assert no_request.call_count == 0, "a request was sent despite invalid input"
    assert "972524265292" not in str(info.value)


def test_duplicates_report_every_position(no_request):
    op = SendSmsOperator(task_id="send", messages=TEN_THOUSAND_WITH_DUPLICATES)
    with pytest.raises(CommPeakValidationError) as info:
        op.execute(make_context())
    assert info.value.problems == [
        "message 9998: internal_id 'm17' duplicates message 17",
        "message 9999: internal_id 'm9997' duplicates message 9997",
    ]
    assert no_request.call_count == 0


def test_a_lone_surrogate_in_a_json_lines_file_names_its_line(no_request, tmp_path):
    path = tmp_path / "audience.jsonl"
    path.write_text(
        '{"recipient_phone": "972524265292", "message_content": "ok", "sender": "S"}\n'
        '{"recipient_phone": "972545330008", "message_content": "cut \\ud83d", "sender": "S"}\n'
    )
    op = SendSmsOperator(task_id="send", messages_path=str(path), report_path=str(tmp_path / "r.csv"))
    with pytest.raises(CommPeakValidationError) as info:
        op.execute(make_context())
    assert info.value.problems == [
        "line 2: message_content holds a character that cannot be sent at position 4 (a lone UTF-16 "
        "surrogate: an emoji or other character cut in half upstream?)"
    ]
    assert no_request.call_count == 0
