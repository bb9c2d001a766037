from __future__ import annotations

import pytest
from conftest import message

from airflow_provider_commpeak.exceptions import CommPeakValidationError
from airflow_provider_commpeak.utils.validation import validate_messages


def problems_of(messages, **kwargs) -> list[str]:
    with pytest.raises(CommPeakValidationError) as info:
        validate_messages(messages, **kwargs)
    assert isinstance(info.value, ValueError)
    return info.value.problems


def test_valid_messages_are_normalised():
    [checked] = validate_messages([message(1, phone="+972 (52) 426-5292")])
    assert checked == {
        "internal_id": "m1",
        "sender": "GLOBAL",
        "recipient_phone": "972524265292",
        "message_content": "test message 1",
    }


def test_every_problem_is_reported_at_once_with_positions():
    problems = problems_of(
        [
            message(0),
            message(1, recipient_phone=""),
            message(2, message_content="  "),
            message(3, phone="97252426529x"),
            {"recipient_phone": "972524265292", "message_content": "x", "sender": "S"},
        ]
    )
    assert problems == [
        "message 1: recipient_phone is missing or empty",
        "message 2: message_content is missing, empty or not a string",
        "message 3: recipient_phone '9725****29x' is not a phone number "
        "(7-15 digits after dropping +, 00, spaces, dashes and brackets)",
        "message 4: internal_id is missing or not a string",
    ]


@pytest.mark.parametrize("phone", ["123456", "1234567890123456"])
def test_number_length_bounds(phone):
    [problem] = problems_of([message(0, phone=phone)])
    assert problem.startswith("message 0: recipient_phone")


def test_duplicate_internal_ids_name_both_positions():
    [problem] = problems_of([message(0), message(1), message(0)])
    assert problem == "message 2: internal_id 'm0' duplicates message 0"


def test_missing_sender_uses_default_else_fails():
    msg = message(0)
    del msg["sender"]
    assert validate_messages([msg], default_sender="ALERTS")[0]["sender"] == "ALERTS"
    assert problems_of([msg]) == [
        "message 0: sender is missing (set it on the message or pass a default sender)"
    ]


def test_unknown_keys_are_rejected():
    [problem] = problems_of([message(0, recipent_phone="972524265292")])
    assert "unknown field(s) recipent_phone" in problem


def test_internal_id_factory_fills_missing_ids():
    msg = message(0)
    del msg["internal_id"]
    checked = validate_messages([msg, message(1)], make_internal_id=lambda pos: f"auto-{pos}")
    assert [m["internal_id"] for m in checked] == ["auto-0", "m1"]


@pytest.mark.parametrize("bad", [None, "972524265292", {"recipient_phone": "1"}, 42, b"x"])
def test_wrong_container_types(bad):
    [problem] = problems_of(bad)
    assert problem.startswith("expected a list of messages")


def test_empty_list_and_non_mapping_items():
    assert problems_of([]) == ["the list of messages is empty"]
    assert problems_of(["972524265292"]) == [
        "message 0: expected a mapping of internal_id, sender, recipient_phone, message_content, got str"
    ]


def test_error_text_lists_at_most_twenty_and_never_a_full_number():
    bad = [message(i, phone="97252426529x") for i in range(25)]
    with pytest.raises(CommPeakValidationError) as info:
        validate_messages(bad)
    text = str(info.value)
    assert text.startswith("25 problem(s) in the messages; nothing was sent")
    assert "... and 5 more" in text
    assert "97252426529x" not in text
    assert len(info.value.problems) == 25


def test_duplicates_among_ten_thousand():
    batch = [message(i) for i in range(10_000)] + [message(1234)]
    assert problems_of(batch) == ["message 10000: internal_id 'm1234' duplicates message 1234"]
