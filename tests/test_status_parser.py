from __future__ import annotations

import pytest

from airflow_provider_commpeak.exceptions import CommPeakApiError
from airflow_provider_commpeak.hooks.status_parser import parse_statuses

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
        pytest.param(
            {"u1": {"status": "delivered"}, "u2": {"message_status": "sent_failed"}}, id="mapping-of-objects"
        ),
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
        ("<html>502 Bad Gateway</html>", "str"),
        ({"messages": [{"message_uuid": "u1"}]}, "dict"),
        ({"messages": ["u1"]}, "dict"),
        ({"status": True}, "dict"),
        ({"detail": "Internal error"}, "dict"),
        ({"other-uuid": "delivered"}, "dict"),
        (42, "int"),
        (None, "NoneType"),
    ],
)
def test_unreadable_bodies_raise_naming_the_shape(body, named):
    with pytest.raises(CommPeakApiError) as info:
        parse_statuses(body, UUIDS)
    assert f"got {named}" in str(info.value)


def test_error_excerpt_is_truncated():
    with pytest.raises(CommPeakApiError) as info:
        parse_statuses("x" * 5000, UUIDS)
    assert len(str(info.value)) < 400
    assert "(5000 chars)" in str(info.value)
