"""Validation and staging: every problem at once, nothing sent, order-independent generated ids."""

from __future__ import annotations

import random

import pytest

from airflow_provider_commpeak._input.bloom import BloomSet
from airflow_provider_commpeak._input.staging import generated_id, stage_messages
from airflow_provider_commpeak._input.validation import expand_recipients
from airflow_provider_commpeak.exceptions import CommPeakValidationError
from helpers import message

NAMESPACE = "af-0123456789abcdef"


def staged(messages, **kwargs) -> list:
    with stage_messages(messages, **kwargs) as staging:
        return list(staging)


def problems_of(messages, **kwargs) -> list[str]:
    with pytest.raises(CommPeakValidationError) as info:
        staged(messages, **kwargs)
    assert isinstance(info.value, ValueError)
    return info.value.problems


def bare(i: int, phone: str = "972524265292", text: str | None = None) -> dict:
    return {"recipient_phone": phone, "message_content": text or f"text {i}"}


def test_valid_messages_are_normalised():
    [checked] = staged([message(1, phone="+972 (52) 426-5292")])
    assert checked.payload() == {
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
        "message 3: recipient_phone '9725****29x' holds characters other than digits, +, spaces, dashes, dots and brackets",
        "message 4: internal_id is missing",
    ]


def test_duplicate_internal_ids_name_both_positions():
    assert problems_of([message(0), message(1), message(0)]) == ["message 2: internal_id 'm0' duplicates message 0"]


def test_an_id_that_looks_like_a_phone_number_is_masked_in_errors():
    [problem] = problems_of([message(0, internal_id="972524265292"), message(1, internal_id="972524265292")])
    assert "972524265292" not in problem
    assert "9725****292" in problem


def test_missing_sender_uses_default_else_fails():
    msg = message(0)
    del msg["sender"]
    assert staged([msg], default_sender="ALERTS")[0].sender == "ALERTS"
    assert problems_of([msg]) == ["message 0: sender is missing (set it on the message or pass a default sender)"]


def test_unknown_keys_are_rejected_without_echoing_odd_ones():
    [problem] = problems_of([message(0, recipent_phone="972524265292", **{"972524265292": "x"})])
    assert "unknown field(s) 'recipent_phone', an unnamed field" in problem
    assert problem.count("972524265292") == 0


@pytest.mark.parametrize("bad", [None, {"recipient_phone": "1"}, 42, b"x"])
def test_wrong_container_types(bad):
    assert problems_of(bad) == [f"expected a list of messages, got {type(bad).__name__}"]


def test_a_string_is_a_file_path_and_a_missing_file_is_named():
    [problem] = problems_of("972524265292")
    assert problem.startswith("the messages file")
    assert "csv or .jsonl" in problem
    assert "972524265292" not in problem
    [problem] = problems_of("/nonexistent/audience.csv")
    assert "cannot be read" in problem


def test_empty_list_and_non_mapping_items():
    assert problems_of([]) == ["the list of messages is empty"]
    assert problems_of(["972524265292"]) == [
        "message 0: expected a mapping of internal_id, sender, recipient_phone, message_content, got str"
    ]


def test_error_text_lists_at_most_twenty_and_never_a_full_number():
    with pytest.raises(CommPeakValidationError) as info:
        staged([message(i, phone="97252426529x") for i in range(25)])
    text = str(info.value)
    assert text.startswith("25 problem(s) in the messages; nothing was sent")
    assert "... and 5 more" in text
    assert "97252426529x" not in text
    assert len(info.value.problems) == 25


def test_duplicates_among_a_hundred_thousand():
    batch = [message(i) for i in range(100_000)] + [message(1234)]
    assert problems_of(batch) == ["message 100000: internal_id 'm1234' duplicates message 1234"]


def test_generated_ids_need_a_namespace():
    assert problems_of([bare(0)], default_sender="S") == ["message 0: internal_id is missing"]


def test_generated_ids_do_not_depend_on_input_order():
    messages = [bare(i, phone=f"4477009{i:05d}") for i in range(200)] + [bare(0, phone="447700900000")] * 3
    first = {
        (m.recipient_phone, m.message_content, m.internal_id)
        for m in staged(messages, default_sender="S", id_namespace=NAMESPACE)
    }
    shuffled = list(messages)
    random.Random(7).shuffle(shuffled)
    second = {
        (m.recipient_phone, m.message_content, m.internal_id)
        for m in staged(shuffled, default_sender="S", id_namespace=NAMESPACE)
    }
    assert first == second
    assert len({m[2] for m in first}) == 203  # identical messages get one id per occurrence


def test_identical_messages_get_one_id_per_occurrence_and_a_namespace_prefix():
    ids = [m.internal_id for m in staged([bare(0)] * 3, default_sender="S", id_namespace=NAMESPACE)]
    assert len(set(ids)) == 3
    assert all(i.startswith(f"{NAMESPACE}-") and len(i) == len(NAMESPACE) + 25 for i in ids)


def test_ids_in_the_generated_namespace_are_refused():
    fake = generated_id(NAMESPACE, b"x" * 32, 0)
    [problem] = problems_of([message(0, internal_id=fake)], id_namespace=NAMESPACE)
    assert "starts with" in problem


def test_the_same_number_in_two_formats_is_the_same_message():
    ids = {
        m.internal_id
        for m in staged(
            [bare(0, "+972 52-426-5292"), bare(0, "972524265292")], default_sender="S", id_namespace=NAMESPACE
        )
    }
    assert len(ids) == 2  # the same content twice: two occurrences, two ids


def test_stats_count_segments_encodings_and_country_codes():
    with stage_messages(
        [bare(0, "972524265292", "a" * 161), bare(1, "447700900123", "שלום"), bare(2, "15550000001")],
        default_sender="S",
        id_namespace=NAMESPACE,
    ) as staging:
        assert staging.stats.messages == 3
        assert staging.stats.segments == 4
        assert staging.stats.encodings == {"GSM-7": 2, "UCS-2": 1}
        assert staging.stats.country_codes == {"972": 1, "44": 1, "1": 1}


def test_bloom_set_never_forgets_and_rarely_lies():
    # Python's hash is salted per process, so the collisions differ between runs: the bounds are
    # ~25x the expected counts (about 0.2 and 2 for this size), never met by chance in practice.
    bloom = BloomSet(10_000)
    assert sum(bloom.add(f"id-{i}") for i in range(10_000)) < 10
    assert all(bloom.add(f"id-{i}") for i in range(10_000))
    false_positives = sum(bloom.add(f"other-{i}") for i in range(10_000))
    assert false_positives < 50


def test_expand_recipients_refuses_strings_and_sets():
    assert expand_recipients(["1", "2"], "x") == [
        {"recipient_phone": "1", "message_content": "x"},
        {"recipient_phone": "2", "message_content": "x"},
    ]
    for bad in ("972524265292", {"972524265292"}, {"a": 1}, None):
        with pytest.raises(CommPeakValidationError, match="recipients must be a list"):
            expand_recipients(bad, "x")


def test_one_message_shape_from_validation_to_the_wire():
    """The CSV columns, the checked message and the request body share one tuple of fields."""
    from airflow_provider_commpeak._input.message import MESSAGE_FIELDS, Message
    from airflow_provider_commpeak.sandbox import server

    [checked] = staged([message(1)])
    assert isinstance(checked, Message)
    assert tuple(checked.payload()) == MESSAGE_FIELDS == Message._fields
    assert set(server.MESSAGE_FIELDS) == set(MESSAGE_FIELDS)  # the sandbox takes the same request fields
