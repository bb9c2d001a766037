from __future__ import annotations

import json
import logging

import pytest
import requests
from conftest import API_KEY, SEND_URL, STATUS_URL, accepted_answer, message, send_answer

from airflow_provider_commpeak.exceptions import CommPeakApiError, CommPeakAuthError, CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook


@pytest.fixture
def hook(commpeak_conn, sleeps) -> CommPeakHook:
    return CommPeakHook(max_retries=3)


def sent_ids(requests_mock) -> list[list[str]]:
    """The internal_ids of each send request, in order."""
    return [
        [m["internal_id"] for m in r.json()["messages"]]
        for r in requests_mock.request_history
        if r.url == SEND_URL
    ]


def test_sends_raw_key_json_and_a_timeout(hook, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    report = hook.send_messages([message(1)])
    request = requests_mock.last_request
    assert request.headers["Authorization"] == API_KEY
    assert request.headers["Content-Type"] == "application/json"
    assert request.timeout == (10.0, 30.0)
    assert request.json() == {"messages": [message(1)]}
    assert report.to_dict() == {
        "task_ids": ["task-1"],
        "message_uuids": ["uuid-m1"],
        "results": {"m1": {"message_uuid": "uuid-m1", "error": None}},
        "accepted": 1,
        "failed": 0,
    }


def test_one_session_for_every_request(hook, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    requests_mock.post(STATUS_URL, json={"messages": []})
    session = hook.get_conn()
    hook.send_messages([message(i) for i in range(5)], batch_size=2)
    hook.get_statuses(["a"])
    assert hook.get_conn() is session
    assert requests_mock.call_count == 4


def test_batches_of_at_most_batch_size(hook, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    report = hook.send_messages([message(i) for i in range(250)], batch_size=100)
    assert sorted(len(ids) for ids in sent_ids(requests_mock)) == [50, 100, 100]
    assert report.accepted == 250
    assert report.message_uuids == [f"uuid-m{i}" for i in range(250)]


def test_numbers_are_sent_as_digits_only(hook, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    hook.send_messages([message(1, phone="+972 (52) 426-5292")])
    assert requests_mock.last_request.json()["messages"][0]["recipient_phone"] == "972524265292"


def test_commpeaks_rate_limit_example_ends_with_both_accepted_once(hook, requests_mock, sleeps):
    """CommPeak's own example: 1003 comes back RATE_LIMIT and 1004 is missing from the answer."""
    requests_mock.post(
        SEND_URL,
        [
            {
                "json": {
                    "status": True,
                    "task_id": "t1",
                    "messages": [{"internal_id": "1003", "message_uuid": None, "error": "RATE_LIMIT"}],
                }
            },
            {
                "json": {
                    "status": True,
                    "task_id": "t2",
                    "messages": [
                        {"internal_id": "1003", "message_uuid": "u-1003", "error": None},
                        {"internal_id": "1004", "message_uuid": "u-1004", "error": None},
                    ],
                }
            },
        ],
    )
    report = hook.send_messages(
        [message(0, internal_id="1003"), message(1, internal_id="1004", phone="972545330008")]
    )
    assert sent_ids(requests_mock) == [["1003", "1004"], ["1003", "1004"]]
    assert report.results == {
        "1003": {"message_uuid": "u-1003", "error": None},
        "1004": {"message_uuid": "u-1004", "error": None},
    }
    assert report.task_ids == ["t1", "t2"]
    assert len(sleeps.delays) == 1


def test_only_rate_limited_and_missing_messages_are_resent(hook, requests_mock):
    requests_mock.post(
        SEND_URL,
        [
            {
                "json": {
                    "status": True,
                    "task_id": "t1",
                    "messages": [
                        {"internal_id": "m0", "message_uuid": "u0", "error": None},
                        {"internal_id": "m1", "message_uuid": None, "error": "RATE_LIMIT"},
                    ],
                }
            },
            {"json": accepted_answer},
        ],
    )
    report = hook.send_messages([message(0), message(1), message(2)])
    assert sent_ids(requests_mock) == [["m0", "m1", "m2"], ["m1", "m2"]]
    assert report.accepted == 3


def test_rate_limit_gives_up_after_max_attempts(hook, requests_mock, sleeps):
    requests_mock.post(
        SEND_URL,
        json={
            "status": True,
            "task_id": "t",
            "messages": [{"internal_id": "m0", "message_uuid": None, "error": "RATE_LIMIT"}],
        },
    )
    report = hook.send_messages([message(0), message(1)], max_attempts=3)
    assert requests_mock.call_count == 3
    assert report.results["m0"]["error"] == "RATE_LIMIT"
    assert report.results["m1"]["error"] == "NOT_ACCEPTED"
    assert len(sleeps.delays) == 2


def test_other_per_message_errors_are_final(hook, requests_mock):
    requests_mock.post(
        SEND_URL,
        json=send_answer(("m0", None, "INVALID_RECIPIENT"), ("m1", "u1", None)),
    )
    report = hook.send_messages([message(0), message(1)])
    assert requests_mock.call_count == 1
    assert report.results["m0"] == {"message_uuid": None, "error": "INVALID_RECIPIENT"}
    assert report.describe_errors() == "1 INVALID_RECIPIENT"


def test_403_is_not_retried_and_raises_auth_error(hook, requests_mock):
    requests_mock.post(SEND_URL, status_code=403, json={"detail": "Not authenticated"})
    with pytest.raises(CommPeakAuthError) as info:
        hook.send_messages([message(0)])
    assert requests_mock.call_count == 1
    assert info.value.status_code == 403
    assert info.value.detail == "Not authenticated"
    assert info.value.report.results == {"m0": {"message_uuid": None, "error": "NOT_SENT"}}


def test_403_mid_run_keeps_what_was_accepted(hook, requests_mock):
    requests_mock.post(
        SEND_URL, [{"json": accepted_answer}, {"status_code": 403, "json": {"detail": "Not authenticated"}}]
    )
    with pytest.raises(CommPeakAuthError) as info:
        hook.send_messages([message(i) for i in range(6)], batch_size=2, max_concurrency=1)
    assert requests_mock.call_count == 2
    assert info.value.report.accepted == 2
    assert info.value.report.errors_by_kind() == {"NOT_SENT": 4}


@pytest.mark.parametrize("status", [503, 429])
def test_not_processed_statuses_are_retried(hook, requests_mock, sleeps, status):
    requests_mock.post(
        SEND_URL, [{"status_code": status, "json": {"detail": "busy"}}] * 2 + [{"json": accepted_answer}]
    )
    report = hook.send_messages([message(0)])
    assert requests_mock.call_count == 3
    assert report.accepted == 1
    assert len(sleeps.delays) == 2


def test_retries_run_out_into_a_reasoned_failure(hook, requests_mock):
    requests_mock.post(SEND_URL, status_code=503, json={"detail": "busy"})
    report = hook.send_messages([message(0)])
    assert requests_mock.call_count == 4  # one try and max_retries=3 retries
    assert report.results["m0"] == {"message_uuid": None, "error": "HTTP_503"}


def test_retry_after_is_honoured(hook, requests_mock, sleeps):
    requests_mock.post(
        SEND_URL, [{"status_code": 429, "headers": {"Retry-After": "7"}}, {"json": accepted_answer}]
    )
    hook.send_messages([message(0)])
    assert sleeps.delays == [7.0]


def test_retry_after_is_capped(commpeak_conn, requests_mock, sleeps):
    requests_mock.post(
        SEND_URL, [{"status_code": 503, "headers": {"Retry-After": "3600"}}, {"json": accepted_answer}]
    )
    CommPeakHook(backoff_max=20).send_messages([message(0)])
    assert sleeps.delays == [20]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_outcome_unknown_statuses_are_never_resent(hook, requests_mock, sleeps, status):
    requests_mock.post(SEND_URL, status_code=status, text="<html>oops</html>")
    report = hook.send_messages([message(0), message(1)])
    assert requests_mock.call_count == 1
    assert sleeps.delays == []
    assert report.errors_by_kind() == {"UNCONFIRMED": 2}


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ReadTimeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ConnectionError,
    ],
)
def test_read_timeout_or_reset_after_sending_is_unconfirmed(hook, requests_mock, exc):
    requests_mock.post(SEND_URL, exc=exc("boom"))
    report = hook.send_messages([message(0)])
    assert requests_mock.call_count == 1
    assert report.results["m0"]["error"] == "UNCONFIRMED"


def test_connect_failures_are_retried(hook, requests_mock, sleeps):
    requests_mock.post(SEND_URL, [{"exc": requests.exceptions.ConnectTimeout}, {"json": accepted_answer}])
    assert hook.send_messages([message(0)]).accepted == 1
    assert requests_mock.call_count == 2


def test_connection_refused_is_retried_then_reported(commpeak_conn, sleeps, monkeypatch):
    """A real refused connection on a closed 127.0.0.1 port (not a mock)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv(
        "AIRFLOW_CONN_COMMPEAK_DEFAULT",
        json.dumps({"conn_type": "commpeak", "password": API_KEY, "host": f"http://127.0.0.1:{port}"}),
    )
    report = CommPeakHook(max_retries=2).send_messages([message(0)])
    assert report.results["m0"]["error"] == "CONNECTION_ERROR"
    assert len(sleeps.delays) == 2


def test_200_that_is_not_json_is_unconfirmed(hook, requests_mock):
    requests_mock.post(SEND_URL, text="<html>maintenance</html>")
    assert hook.send_messages([message(0)]).results["m0"]["error"] == "UNCONFIRMED"


def test_200_without_a_messages_list_is_unconfirmed(hook, requests_mock):
    requests_mock.post(SEND_URL, json={"status": False})
    assert hook.send_messages([message(0)]).results["m0"]["error"] == "UNCONFIRMED"


def test_422_fails_the_batch_with_its_code(hook, requests_mock):
    requests_mock.post(SEND_URL, status_code=422, json={"detail": [{"loc": ["body"], "msg": "bad"}]})
    assert hook.send_messages([message(0)]).results["m0"]["error"] == "HTTP_422"
    assert requests_mock.call_count == 1


def test_422_detail_never_echoes_the_input(hook, requests_mock, capsys, caplog):
    detail = [
        {
            "loc": ["body", "messages", 0],
            "msg": "bad",
            "type": "value_error",
            "input": {"recipient_phone": "972524265292", "message_content": "test message 0"},
        }
    ]
    requests_mock.post(SEND_URL, status_code=422, json={"detail": detail})
    hook.send_messages([message(0)])
    logs = capsys.readouterr().out + caplog.text
    assert "HTTP 422" in logs
    assert "972524265292" not in logs and "test message 0" not in logs


def test_invalid_input_sends_nothing(hook, requests_mock):
    with pytest.raises(CommPeakValidationError):
        hook.send_messages([message(0), message(1, phone="12")])
    assert requests_mock.call_count == 0


def test_answers_for_unknown_internal_ids_are_ignored(hook, requests_mock):
    requests_mock.post(
        SEND_URL,
        [
            {
                "json": {
                    "status": True,
                    "task_id": "t",
                    "messages": [{"internal_id": "other", "message_uuid": "x", "error": None}],
                }
            },
            {"json": accepted_answer},
        ],
    )
    report = hook.send_messages([message(0)])
    assert report.results == {"m0": {"message_uuid": "uuid-m0", "error": None}}


def test_concurrent_batches_keep_input_order(hook, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    seen = []
    report = hook.send_messages(
        [message(i) for i in range(1000)], batch_size=10, max_concurrency=8, on_batch_done=seen.append
    )
    assert list(report.results) == [f"m{i}" for i in range(1000)]
    assert [next(iter(b.results)) for b in seen] == [f"m{i}" for i in range(0, 1000, 10)]
    assert sorted(i for ids in sent_ids(requests_mock) for i in ids) == sorted(f"m{i}" for i in range(1000))


def test_get_statuses_chunks_and_lowercases(hook, requests_mock):
    requests_mock.post(
        STATUS_URL,
        json=lambda r, c: {
            "messages": [{"message_uuid": u, "status": "DELIVERED"} for u in r.json()["message_uuids"]]
        },
    )
    statuses = hook.get_statuses([f"u{i}" for i in range(1201)], batch_size=500)
    assert [len(r.json()["message_uuids"]) for r in requests_mock.request_history] == [500, 500, 201]
    assert set(statuses.values()) == {"delivered"} and len(statuses) == 1201


def test_get_statuses_retries_server_errors_because_reads_are_safe(hook, requests_mock, sleeps):
    requests_mock.post(
        STATUS_URL,
        [
            {"status_code": 500},
            {"exc": requests.exceptions.ReadTimeout},
            {"json": {"messages": [{"message_uuid": "u1", "status": "sent"}]}},
        ],
    )
    assert hook.get_statuses(["u1"]) == {"u1": "sent"}
    assert len(sleeps.delays) == 2


def test_get_statuses_raises_on_unreadable_body(hook, requests_mock):
    requests_mock.post(STATUS_URL, text="<html>proxy</html>")
    with pytest.raises(CommPeakApiError, match="not JSON"):
        hook.get_statuses(["u1"])


def test_test_connection_sends_no_sms(hook, requests_mock):
    requests_mock.post(STATUS_URL, json={"messages": []})
    assert hook.test_connection() == (
        True,
        "Connected to https://sendsms.commpeak.com: the API key was accepted",
    )
    assert requests_mock.last_request.url == STATUS_URL


def test_test_connection_reports_a_refused_key(hook, requests_mock):
    requests_mock.post(STATUS_URL, status_code=403, json={"detail": "Not authenticated"})
    ok, text = hook.test_connection()
    assert not ok and "refused the API key" in text


def test_missing_key_fails_naming_the_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", json.dumps({"conn_type": "commpeak"}))
    ok, text = CommPeakHook().test_connection()
    assert not ok and "Connection 'commpeak_default' has no API key" in text


def test_the_key_never_appears_in_logs_or_errors(hook, requests_mock, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    requests_mock.post(SEND_URL, [{"status_code": 503}, {"status_code": 500, "text": "err"}])
    requests_mock.post(STATUS_URL, status_code=403, json={"detail": "Not authenticated"})
    hook.send_messages([message(0)])
    with pytest.raises(CommPeakAuthError) as info:
        hook.get_statuses(["u"])
    logs = caplog.text + capsys.readouterr().out
    assert "UNCONFIRMED" in logs and "HTTP 503" in logs  # the logs were captured
    assert API_KEY not in logs
    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value.detail)
    assert "972524265292" not in logs
    assert "test message" not in logs


def test_close_releases_the_session(hook, requests_mock):
    requests_mock.post(STATUS_URL, json={"messages": []})
    first = hook.get_conn()
    hook.close()
    assert hook.get_conn() is not first


def test_pacer_is_off_until_the_first_rate_limit_then_follows_the_measured_rate():
    from airflow_provider_commpeak.hooks.pacing import HEADROOM, AdaptivePacer

    now = [100.0]
    slept: list[float] = []
    pacer = AdaptivePacer(clock=lambda: now[0], sleep=slept.append)
    pacer.acquire(100)
    assert slept == [] and pacer.rate is None
    assert pacer.record(accepted=100, rate_limited=False) is False  # still unpaced
    now[0] += 1.0
    assert pacer.record(accepted=100, rate_limited=True) is True
    assert pacer.rate == pytest.approx(200 * HEADROOM)  # 200 accepted over the first second
    pacer.acquire(100)
    pacer.acquire(100)
    assert slept == [pytest.approx(100 / (200 * HEADROOM))]


def test_pacer_falls_back_to_backoff_when_nothing_was_accepted():
    from airflow_provider_commpeak.hooks.pacing import AdaptivePacer

    pacer = AdaptivePacer(clock=lambda: 5.0, sleep=lambda s: None)
    assert pacer.record(accepted=0, rate_limited=True) is False
    assert pacer.rate is None
