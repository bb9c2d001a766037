from __future__ import annotations

import pytest

from airflow_provider_commpeak._engine.status import parse_statuses, read_statuses
from airflow_provider_commpeak.exceptions import CommPeakApiError

UUIDS = ["u1", "u2", "u3"]
EXPECTED = {"u1": "delivered", "u2": "sent_failed", "u3": "unknown"}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {
                "messages": [
                    {"message_uuid": "u1", "status": "delivered"},
                    {"message_uuid": "u2", "status": "sent_failed"},
                ]
            },
            id="sandbox-shape",
        ),
        pytest.param(
            {"data": [{"uuid": "u1", "status": "DELIVERED"}, {"uuid": "u2", "status": "Sent_Failed"}]},
            id="data",
        ),
        pytest.param(
            {
                "results": [
                    {"id": "u1", "message_status": "delivered"},
                    {"id": "u2", "delivery_status": "sent_failed"},
                ]
            },
            id="results",
        ),
        pytest.param(
            [{"message_uuid": "u1", "delivery_status": "delivered"}, {"uuid": "u2", "status": "sent_failed"}],
            id="bare-list",
        ),
        pytest.param({"u1": "delivered", "u2": "SENT_FAILED"}, id="mapping-of-strings"),
        pytest.param({"u1": {"status": "delivered"}, "u2": {"message_status": "sent_failed"}}, id="mapping-of-objects"),
        pytest.param(
            {
                "status": True,
                "messages": [
                    {"message_uuid": "u1", "status": " delivered "},
                    {"message_uuid": "u2", "status": "sent_failed"},
                ],
            },
            id="with-status-flag",
        ),
        pytest.param(
            {"status": True, "messages": {"u1": "delivered", "u2": {"status": "sent_failed"}}},
            id="mapping-under-messages",
        ),
        pytest.param({"data": {"U1": "delivered", "u2": "sent_failed"}}, id="mapping-under-data-recased"),
        pytest.param(
            {"messages": [{"uuid": "U1", "status": "delivered"}, {"uuid": " u2 ", "status": "sent_failed"}]},
            id="recased-entries",
        ),
    ],
)
def test_each_documented_shape(body):
    assert parse_statuses(body, UUIDS) == EXPECTED


def test_empty_answer_means_all_unknown():
    assert parse_statuses({"messages": []}, UUIDS) == dict.fromkeys(UUIDS, "unknown")
    assert parse_statuses([], UUIDS) == dict.fromkeys(UUIDS, "unknown")


def test_extra_uuids_in_the_answer_are_ignored():
    assert parse_statuses({"messages": [{"id": "zzz", "status": "delivered"}]}, ["u1"]) == {"u1": "unknown"}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("<html>502 Bad Gateway</html>", "a string of 28 characters"),
        ({"messages": ["u1"]}, "an object with keys 'messages' (list)"),
        ({"status": True}, "an object with keys 'status' (bool)"),
        ({"detail": "Internal error"}, "an object with keys 'detail' (str)"),
        ({"other-uuid": "delivered"}, "an object with 1 other key(s)"),
        ({"972524265292": "delivered"}, "an object with 1 other key(s)"),
        (42, "a number"),
        (None, "null"),
    ],
)
def test_unreadable_bodies_raise_naming_the_shape_never_quoting_it(body, named):
    with pytest.raises(CommPeakApiError) as info:
        parse_statuses(body, UUIDS)
    assert f"got {named}" in str(info.value)
    assert "972524265292" not in str(info.value)
    assert "Internal error" not in str(info.value)


@pytest.mark.parametrize(
    "entry",
    [
        {"message_uuid": "u1"},
        {"message_uuid": "u1", "status": None},
        {"message_uuid": "u1", "status": 3},
        {"message_uuid": "u1", "status": ["delivered"]},
        {"message_uuid": "u1", "status": "x" * 500},
        {"status": "delivered"},
        "u1",
    ],
)
def test_one_unreadable_entry_leaves_only_its_message_unknown(entry):
    body = {"messages": [entry, {"message_uuid": "u2", "status": "delivered"}]}
    assert parse_statuses(body, ["u1", "u2"]) == {"u1": "unknown", "u2": "delivered"}
    answer = read_statuses(body, ["u1", "u2"])
    assert answer.unreadable == 1


def test_a_mapping_entry_that_is_not_a_status_is_unknown():
    assert parse_statuses({"u1": None, "u2": {"status": "delivered"}}, ["u1", "u2"]) == {
        "u1": "unknown",
        "u2": "delivered",
    }


def test_error_text_of_a_huge_body_stays_short():
    with pytest.raises(CommPeakApiError) as info:
        parse_statuses("x" * 5000, UUIDS)
    assert len(str(info.value)) < 200


def test_uuids_compare_ignoring_case_and_keep_the_case_asked():
    upper = "0562F2AA-0000-4000-8000-00000000000A"
    assert parse_statuses({"messages": [{"message_uuid": upper.lower(), "status": "delivered"}]}, [upper]) == {
        upper: "delivered"
    }
    assert parse_statuses({upper.lower(): "delivered"}, [upper]) == {upper: "delivered"}


def test_a_status_outside_the_known_set_is_read_and_flagged():
    read = read_statuses({"messages": [{"uuid": "u1", "status": "EXPIRED"}, {"uuid": "u2", "status": "sent"}]}, UUIDS)
    assert read.statuses == {"u1": "expired", "u2": "sent"}
    assert read.unfamiliar == {"expired"}
