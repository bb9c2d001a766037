"""CommPeakHook against requests-mock: requests, answers, retries, give-up rule, statuses."""

from __future__ import annotations

import json

import pytest
import requests

from airflow_provider_commpeak._engine.rate import BURST
from airflow_provider_commpeak.exceptions import CommPeakApiError, CommPeakAuthError, CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from helpers import API_KEY, SEND_URL, STATUS_URL, accepted_answer, message, send_answer, sent_ids
from helpers.ratesim import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def hook(commpeak_conn, delays, clock) -> CommPeakHook:
    """A hook whose pacing runs on a fake clock and whose retries do not wait."""
    hook = CommPeakHook(max_retries=3, clock=clock, sleep=clock.sleep)
    return hook


def rate_limited(accept: int):
    """An answer accepting the first ``accept`` messages and refusing the next (the rest left out)."""

    def answer(request, context):
        messages = request.json()["messages"]
        results = [(m["internal_id"], f"uuid-{m['internal_id']}", None) for m in messages[:accept]]
        if len(messages) > accept:
            results.append((messages[accept]["internal_id"], None, "RATE_LIMIT"))
        return send_answer(*results)

    return answer


# -- requests ---------------------------------------------------------------------------------------


def test_sends_raw_key_json_and_a_deadline(hook, requests_mock):
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
        "results": {"m1": {"message_uuid": "uuid-m1", "error": None, "task_id": "task-1"}},
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


def test_batches_of_at_most_batch_size_and_the_report_in_input_order(hook, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    report = hook.send_messages([message(i) for i in range(250)], batch_size=100)
    assert sorted(len(ids) for ids in sent_ids(requests_mock)) == [50, 100, 100]
    assert report.accepted == 250
    assert report.message_uuids == [f"uuid-m{i}" for i in range(250)]


def test_numbers_are_sent_in_international_digits(hook, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    hook.send_messages([message(1, phone="+972 (52) 426-5292"), message(2, phone="052-426-5292")], default_region="IL")
    assert [m["recipient_phone"] for m in requests_mock.last_request.json()["messages"]] == [
        "972524265292",
        "972524265292",
    ]


def test_invalid_input_sends_nothing(hook, requests_mock):
    with pytest.raises(CommPeakValidationError):
        hook.send_messages([message(0), message(1, phone="123")])
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 1001}, "batch_size"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"default_region": "Israel"}, "default_region"),
    ],
)
def test_bad_send_options_are_refused_before_any_request(hook, requests_mock, options, problem):
    with pytest.raises(CommPeakValidationError, match=problem):
        hook.send_messages([message(0)], **options)
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": "inf"}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"backoff_max": float("inf")}, "backoff_max"),
        ({"rate_limit_timeout": float("nan")}, "rate_limit_timeout"),
        ({"max_rate": 0}, "max_rate"),
        ({"max_rate": -5}, "max_rate"),
        ({"max_rate": float("inf")}, "max_rate"),
        ({"max_rate": float("nan")}, "max_rate"),
        ({"max_rate": True}, "max_rate"),
        ({"max_rate": "100"}, "max_rate"),
    ],
)
def test_absurd_numbers_are_refused_when_the_hook_is_made(kwargs, problem):
    with pytest.raises(CommPeakValidationError, match=problem):
        CommPeakHook(**kwargs)


def test_max_attempts_is_deprecated_and_ignored(hook, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    with pytest.warns(DeprecationWarning, match="max_attempts"):
        assert hook.send_messages([message(0)], max_attempts=1).accepted == 1


# -- what each answer means -------------------------------------------------------------------------


def test_commpeaks_rate_limit_example_ends_with_both_accepted_once(hook, requests_mock):
    """CommPeak's own example: 1003 comes back RATE_LIMIT and 1004 is missing from the answer."""
    requests_mock.post(
        SEND_URL,
        [
            {"json": send_answer(("1003", None, "RATE_LIMIT"), task_id="t1")},
            {"json": send_answer(("1003", "u-1003", None), ("1004", "u-1004", None), task_id="t2")},
        ],
    )
    report = hook.send_messages([message(0, internal_id="1003"), message(1, internal_id="1004")])
    assert sent_ids(requests_mock) == [["1003", "1004"], ["1003", "1004"]]
    assert report.results == {
        "1003": {"message_uuid": "u-1003", "error": None, "task_id": "t2"},
        "1004": {"message_uuid": "u-1004", "error": None, "task_id": "t2"},
    }
    assert report.task_ids == ["t1", "t2"]


def test_only_rate_limited_and_missing_messages_are_resent(hook, requests_mock):
    requests_mock.post(
        SEND_URL,
        [{"json": send_answer(("m0", "u0", None), ("m1", None, "RATE_LIMIT"))}, {"json": accepted_answer}],
    )
    report = hook.send_messages([message(0), message(1), message(2)])
    assert sent_ids(requests_mock) == [["m0", "m1", "m2"], ["m1", "m2"]]
    assert report.accepted == 3


def test_a_trickle_of_acceptances_never_gives_up_with_default_settings(hook, requests_mock):
    """The API takes one message per request: every message is still accepted, exactly once."""
    requests_mock.post(SEND_URL, json=rate_limited(accept=1))
    report = hook.send_messages([message(i) for i in range(40)])
    assert report.accepted == 40
    assert report.failed == 0
    accepted_ids = [ids[0] for ids in sent_ids(requests_mock)]
    assert sorted(accepted_ids) == sorted(f"m{i}" for i in range(40))


def test_gives_up_only_after_rate_limit_timeout_without_any_acceptance(commpeak_conn, delays, requests_mock):
    clock = FakeClock()
    hook = CommPeakHook(rate_limit_timeout=120, clock=clock, sleep=clock.sleep)
    requests_mock.post(SEND_URL, json=rate_limited(accept=0))
    started = clock.now
    report = hook.send_messages([message(i) for i in range(5)], max_concurrency=1)
    assert report.errors_by_kind() == {"RATE_LIMIT": 1, "NOT_ACCEPTED": 4}
    assert 120 <= clock.now - started < 200
    assert requests_mock.call_count < 300


def test_a_slow_trickle_resets_the_give_up_clock(commpeak_conn, delays, requests_mock):
    """One acceptance every 100 (fake) seconds, with rate_limit_timeout=120: never given up."""
    clock = FakeClock()
    hook = CommPeakHook(rate_limit_timeout=120, clock=clock, sleep=clock.sleep)
    last = [clock.now]

    def answer(request, context):
        messages = request.json()["messages"]
        if clock.now - last[0] >= 100:
            last[0] = clock.now
            return send_answer((messages[0]["internal_id"], f"u-{messages[0]['internal_id']}", None))
        return send_answer((messages[0]["internal_id"], None, "RATE_LIMIT"))

    requests_mock.post(SEND_URL, json=answer)
    report = hook.send_messages([message(i) for i in range(4)], max_concurrency=1)
    assert report.accepted == 4


def test_other_per_message_errors_are_final(hook, requests_mock):
    requests_mock.post(SEND_URL, json=send_answer(("m0", None, "INVALID_RECIPIENT"), ("m1", "u1", None)))
    report = hook.send_messages([message(0), message(1)])
    assert requests_mock.call_count == 1
    assert report.results["m0"] == {"message_uuid": None, "error": "INVALID_RECIPIENT", "task_id": "t"}


@pytest.mark.parametrize("falsy", [None, "", False, 0, []])
def test_an_entry_with_a_uuid_is_accepted_whatever_falsy_error_rides_with_it(hook, requests_mock, falsy):
    requests_mock.post(SEND_URL, json=send_answer(("m0", "u0", falsy)))
    assert hook.send_messages([message(0)]).results["m0"] == {"message_uuid": "u0", "error": None, "task_id": "t"}


def test_odd_entries(hook, requests_mock):
    requests_mock.post(
        SEND_URL,
        json=send_answer(
            ("m0", "u0", "QUEUED_WITH_WARNING"),  # a uuid and an error: kept, never resent
            ("m1", None, None),  # neither: the API said nothing either way
            ("m2", None, "<b>972524265292 is invalid</b>"),  # an error that is not a code
            ("m3", "<script>", None),  # a uuid of a shape we cannot keep
        ),
    )
    report = hook.send_messages([message(i) for i in range(4)])
    assert requests_mock.call_count == 1
    assert report.results == {
        "m0": {"message_uuid": "u0", "error": "QUEUED_WITH_WARNING", "task_id": "t"},
        "m1": {"message_uuid": None, "error": "UNCONFIRMED", "task_id": "t"},
        "m2": {"message_uuid": None, "error": "API_ERROR", "task_id": "t"},
        "m3": {"message_uuid": None, "error": "UNCONFIRMED", "task_id": "t"},
    }


def test_an_entry_naming_no_message_makes_the_unnamed_ones_unconfirmed(hook, requests_mock):
    """A uuid under an id we did not send means the API took *something*: nothing is resent blindly."""
    requests_mock.post(
        SEND_URL,
        [
            {"json": send_answer(("m0", "u0", None), ("other", "u9", None), ("m0", "u-dup", None))},
            {"json": accepted_answer},
        ],
    )
    report = hook.send_messages([message(0), message(1)])
    assert requests_mock.call_count == 1
    assert report.results == {
        "m0": {"message_uuid": "u0", "error": None, "task_id": "t"},
        "m1": {"message_uuid": None, "error": "UNCONFIRMED", "task_id": "t"},  # the request that may carry it
    }


@pytest.mark.parametrize(
    ("ids", "echo"),
    [
        (["007", "008", "009"], lambda m: int(m["internal_id"])),  # "007" echoed as the number 7
        (["a1 ", "b2 ", "c3 "], lambda m: m["internal_id"].strip()),  # trimmed
        (["a1", "b2", "c3"], lambda m: m["internal_id"].upper()),  # re-cased
        (["a1", "b2", "c3"], lambda m: None),  # left out (entries in order)
    ],
    ids=["retyped", "trimmed", "recased", "missing"],
)
def test_an_echo_that_differs_from_what_was_sent_never_resends(hook, requests_mock, ids, echo):
    """The first outside probe's worst case: each message accepted 62+ times. Now: once, UNCONFIRMED."""

    def answer(request, context):
        entries = [{"message_uuid": f"u{i}", "error": None} for i, _ in enumerate(request.json()["messages"])]
        for entry, sent in zip(entries, request.json()["messages"], strict=True):
            if echo(sent) is not None:
                entry["internal_id"] = echo(sent)
        return {"status": True, "task_id": "t", "messages": entries}

    messages = [message(i) | {"internal_id": internal_id} for i, internal_id in enumerate(ids)]
    requests_mock.post(SEND_URL, json=answer)
    report = hook.send_messages(messages)
    assert requests_mock.call_count == 1
    assert report.errors_by_kind() == {"UNCONFIRMED": 3}


def test_a_refusal_under_an_unknown_id_still_lets_the_missing_message_go_again(hook, requests_mock):
    """An entry that surely stands for nothing accepted (an error, no uuid) does not block a resend."""
    requests_mock.post(
        SEND_URL,
        [{"json": send_answer(("m0", "u0", None), ("M1", None, "RATE_LIMIT"))}, {"json": accepted_answer}],
    )
    report = hook.send_messages([message(0), message(1)])
    assert requests_mock.call_count == 2
    assert report.accepted == 2


@pytest.mark.parametrize("error", ["RATE_LIMIT", "rate_limit", " Rate_Limit "])
def test_rate_limit_is_a_refusal_even_beside_a_uuid_and_in_any_case(hook, requests_mock, error):
    requests_mock.post(SEND_URL, [{"json": send_answer(("m0", "u-refused", error))}, {"json": accepted_answer}])
    report = hook.send_messages([message(0)])
    assert requests_mock.call_count == 2
    assert report.results["m0"]["error"] is None
    assert report.results["m0"]["message_uuid"] != "u-refused"


@pytest.mark.parametrize("body", ["<html>ok</html>", json.dumps({"status": True}), json.dumps([1, 2])])
def test_a_200_without_a_readable_messages_list_is_unconfirmed(hook, requests_mock, body):
    requests_mock.post(SEND_URL, text=body)
    report = hook.send_messages([message(0), message(1)])
    assert report.errors_by_kind() == {"UNCONFIRMED": 2}
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_push_the_batch_back_and_honour_retry_after(hook, requests_mock, delays, status):
    requests_mock.post(SEND_URL, [{"status_code": status, "headers": {"Retry-After": "7"}}, {"json": accepted_answer}])
    report = hook.send_messages([message(0), message(1)])
    assert report.accepted == 2
    assert sent_ids(requests_mock) == [["m0", "m1"], ["m0", "m1"]]
    assert 7.0 in delays.delays


@pytest.mark.parametrize("header", ["nan", "inf", "-5", "1e400", "soon", "Wed, 99 Foo 2026"])
def test_unreadable_retry_after_falls_back_to_backoff(hook, requests_mock, delays, header):
    requests_mock.post(SEND_URL, [{"status_code": 429, "headers": {"Retry-After": header}}, {"json": accepted_answer}])
    assert hook.send_messages([message(0)]).accepted == 1
    assert all(0 < d <= 60 for d in delays.delays)


def test_retry_after_is_capped(commpeak_conn, delays, clock, requests_mock):
    hook = CommPeakHook(backoff_max=5, clock=clock, sleep=clock.sleep)
    requests_mock.post(SEND_URL, [{"status_code": 429, "headers": {"Retry-After": "3600"}}, {"json": accepted_answer}])
    hook.send_messages([message(0)])
    assert max(delays.delays) == 5


@pytest.mark.parametrize("status", [500, 502, 504])
def test_outcome_unknown_statuses_are_never_resent(hook, requests_mock, status):
    requests_mock.post(SEND_URL, status_code=status, text="<html>97252... echoed</html>")
    report = hook.send_messages([message(0), message(1)])
    assert requests_mock.call_count == 1
    assert report.errors_by_kind() == {"UNCONFIRMED": 2}


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ReadTimeout,
        requests.exceptions.ConnectionError,
        requests.exceptions.ChunkedEncodingError,
    ],
)
def test_no_answer_after_sending_is_unconfirmed(hook, requests_mock, exc):
    requests_mock.post(SEND_URL, exc=exc)
    report = hook.send_messages([message(0)])
    assert requests_mock.call_count == 1
    assert report.results["m0"] == {"message_uuid": None, "error": "UNCONFIRMED", "task_id": None}


@pytest.mark.parametrize(
    "exc", [requests.exceptions.ConnectTimeout, requests.exceptions.SSLError, requests.exceptions.ProxyError]
)
def test_failures_before_sending_are_retried_and_never_unconfirmed(hook, requests_mock, exc):
    requests_mock.post(SEND_URL, [{"exc": exc}, {"exc": exc}, {"json": accepted_answer}])
    report = hook.send_messages([message(0)])
    assert report.results["m0"]["error"] is None
    assert requests_mock.call_count == 3


def test_an_unreachable_api_stops_the_send_with_resendable_errors(hook, requests_mock):
    requests_mock.post(SEND_URL, exc=requests.exceptions.ConnectTimeout)
    report = hook.send_messages([message(i) for i in range(500)], batch_size=100, max_concurrency=1)
    assert requests_mock.call_count == 4  # one batch, tried 1 + max_retries times; the rest never sent
    assert report.errors_by_kind() == {"CONNECTION_ERROR": 100, "NOT_SENT": 400}


def test_a_request_that_cannot_be_built_is_not_retried(hook, requests_mock):
    requests_mock.post(SEND_URL, exc=requests.exceptions.InvalidHeader)
    report = hook.send_messages([message(0), message(1)], batch_size=1, max_concurrency=1)
    assert requests_mock.call_count == 1
    assert report.errors_by_kind() == {"NOT_SENT": 2}


def test_a_redirect_is_never_followed_and_stops_the_send(hook, requests_mock, logs):
    requests_mock.post(SEND_URL, status_code=307, headers={"Location": "http://evil.example/simple_send/"})
    report = hook.send_messages([message(i) for i in range(300)], max_concurrency=1)
    assert requests_mock.call_count == 1
    assert report.errors_by_kind() == {"HTTP_307": 100, "NOT_SENT": 200}
    assert "evil.example" in logs.text
    assert "never followed" in logs.text


def test_403_is_not_retried_and_raises_auth_error_with_the_report(hook, requests_mock):
    requests_mock.post(SEND_URL, status_code=403, json={"detail": "Not authenticated"})
    with pytest.raises(CommPeakAuthError, match="commpeak_default") as info:
        hook.send_messages([message(0), message(1)])
    assert requests_mock.call_count == 1
    assert info.value.report.errors_by_kind() == {"NOT_SENT": 2}


def test_403_mid_run_keeps_what_was_accepted(hook, requests_mock):
    requests_mock.post(SEND_URL, [{"json": accepted_answer}, {"status_code": 403}])
    with pytest.raises(CommPeakAuthError) as info:
        hook.send_messages([message(i) for i in range(4)], batch_size=2, max_concurrency=1)
    assert info.value.report.accepted == 2
    assert info.value.report.errors_by_kind() == {"NOT_SENT": 2}


def test_422_fails_its_batch_and_the_send_goes_on(hook, requests_mock):
    requests_mock.post(SEND_URL, [{"status_code": 422, "json": {"detail": []}}, {"json": accepted_answer}])
    report = hook.send_messages([message(0), message(1)], batch_size=1, max_concurrency=1)
    assert report.results["m0"]["error"] == "HTTP_422"
    assert report.results["m1"]["error"] is None


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (
            422,
            {
                "detail": [
                    {
                        "loc": ["body", "messages", 0, "972524265292"],
                        "msg": "bad number 972524265292 for text SECRET-OTP 4711",
                        "type": "value_error",
                        "input": {"recipient_phone": "972524265292", "message_content": "SECRET-OTP 4711"},
                    }
                ]
            },
        ),
        (400, {"detail": "bad number 972524265292 for text SECRET-OTP 4711"}),
        (502, "<html>972524265292 SECRET-OTP 4711</html>"),
    ],
)
def test_answers_that_echo_the_request_are_never_logged(hook, requests_mock, logs, status, body):
    kwargs = {"json": body} if isinstance(body, dict) else {"text": body}
    requests_mock.post(SEND_URL, status_code=status, **kwargs)
    hook.send_messages([message(0, phone="972524265292", message_content="SECRET-OTP 4711")])
    assert "972524265292" not in logs.text
    assert "SECRET-OTP" not in logs.text
    assert f"HTTP {status}" in logs.text


def test_five_unknown_outcomes_in_a_row_stop_the_send(hook, requests_mock):
    requests_mock.post(SEND_URL, status_code=504)
    report = hook.send_messages([message(i) for i in range(10)], batch_size=1, max_concurrency=1)
    assert requests_mock.call_count == 5
    assert report.errors_by_kind() == {"UNCONFIRMED": 5, "NOT_SENT": 5}


def test_a_raising_callback_fails_the_send_after_its_batch_was_recorded(hook, requests_mock):
    from airflow_provider_commpeak._engine.ledger import SendLedger
    from helpers.fakes import FakeStateStore

    requests_mock.post(SEND_URL, json=accepted_answer)
    store = FakeStateStore()

    def boom(report):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        hook.send_messages(
            [message(i) for i in range(3)],
            batch_size=1,
            max_concurrency=1,
            ledger=SendLedger(store),
            on_batch_done=boom,
        )
    settled = SendLedger(store).settled()
    assert (len(settled), settled.get("m0").result.internal_id) == (1, "m0")


# -- statuses and the connection --------------------------------------------------------------------


def test_get_statuses_chunks_and_lowercases(hook, requests_mock):
    requests_mock.post(
        STATUS_URL,
        [
            {
                "json": {
                    "messages": [
                        {"message_uuid": "a", "status": "DELIVERED"},
                        {"message_uuid": "b", "status": "sent"},
                    ]
                }
            },
            {"json": {"data": [{"uuid": "c", "status": "Undelivered"}]}},
        ],
    )
    assert hook.get_statuses(["a", "b", "c"], batch_size=2) == {
        "a": "delivered",
        "b": "sent",
        "c": "undelivered",
    }
    assert [r.json() for r in requests_mock.request_history] == [
        {"message_uuids": ["a", "b"]},
        {"message_uuids": ["c"]},
    ]


def test_get_statuses_retries_server_errors_because_reads_are_safe(hook, requests_mock):
    requests_mock.post(
        STATUS_URL,
        [{"status_code": 500}, {"exc": requests.exceptions.ReadTimeout}, {"json": {"a": "delivered"}}],
    )
    assert hook.get_statuses(["a"]) == {"a": "delivered"}
    assert requests_mock.call_count == 3


def test_one_unreadable_status_entry_leaves_only_that_message_unknown(hook, requests_mock):
    requests_mock.post(
        STATUS_URL,
        json={
            "messages": [
                {"message_uuid": "a", "status": None},
                {"message_uuid": "b", "status": 3},
                {"message_uuid": "c", "status": "delivered"},
            ]
        },
    )
    assert hook.get_statuses(["a", "b", "c"]) == {"a": "unknown", "b": "unknown", "c": "delivered"}


def test_get_statuses_raises_on_an_unreadable_body_naming_its_shape_only(hook, requests_mock):
    requests_mock.post(STATUS_URL, json={"error": "972524265292 unknown"})
    with pytest.raises(CommPeakApiError, match="an object with keys 'error'") as info:
        hook.get_statuses(["a"])
    assert "972524265292" not in str(info.value)


def test_get_statuses_refuses_a_batch_size_of_zero(hook):
    with pytest.raises(CommPeakValidationError, match="batch_size"):
        hook.get_statuses(["a"], batch_size=0)


def test_test_connection_sends_no_sms(hook, requests_mock):
    requests_mock.post(STATUS_URL, json={"messages": []})
    ok, text = hook.test_connection()
    assert ok
    assert "accepted" in text
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.url == STATUS_URL
    assert requests_mock.last_request.timeout == (5.0, 5.0)


def test_test_connection_tries_once(hook, requests_mock):
    requests_mock.post(STATUS_URL, exc=requests.exceptions.ConnectTimeout)
    ok, text = hook.test_connection()
    assert not ok
    assert "connection failed" in text
    assert requests_mock.call_count == 1


def test_test_connection_reports_a_refused_key_without_naming_the_connection(monkeypatch, requests_mock):
    monkeypatch.setenv("AIRFLOW_CONN_TMP_X1Y2", json.dumps({"conn_type": "commpeak", "password": "k"}))
    requests_mock.post(STATUS_URL, status_code=403, json={"detail": "Not authenticated"})
    ok, text = CommPeakHook("tmp_x1y2").test_connection()
    assert not ok
    assert "refused the API key" in text
    assert "tmp_x1y2" not in text
    monkeypatch.setenv("AIRFLOW_CONN_TMP_X1Y2", json.dumps({"conn_type": "commpeak"}))
    ok, text = CommPeakHook("tmp_x1y2").test_connection()
    assert not ok
    assert text.startswith("The connection has no API key")


def test_missing_key_fails_naming_the_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", json.dumps({"conn_type": "commpeak"}))
    with pytest.raises(Exception, match="'commpeak_default' has no API key"):
        CommPeakHook().send_messages([message(0)])


def test_the_key_never_appears_in_logs_or_errors(hook, requests_mock, logs):
    requests_mock.post(SEND_URL, status_code=403, json={"detail": "Not authenticated"})
    with pytest.raises(CommPeakAuthError) as info:
        hook.send_messages([message(0)])
    assert API_KEY not in str(info.value)
    assert API_KEY not in repr(hook.config)
    assert "API key was refused" in logs.text
    assert API_KEY not in logs.text


def test_close_releases_the_session(hook, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    first = hook.get_conn()
    hook.close()
    assert hook.get_conn() is not first


# -- answers of hostile size and depth ---------------------------------------------------------------


def test_a_body_nested_too_deep_costs_only_its_own_batch(hook, requests_mock):
    deep = "[" * 200_000 + "]" * 200_000
    answers = [{"json": accepted_answer}] * 2 + [{"text": deep}] + [{"json": accepted_answer}] * 7
    requests_mock.post(SEND_URL, answers)
    report = hook.send_messages([message(i) for i in range(10)], batch_size=1, max_concurrency=1)
    assert requests_mock.call_count == 10
    assert report.errors_by_kind() == {"UNCONFIRMED": 1}
    assert report.accepted == 9


def test_a_status_body_nested_too_deep_is_an_api_error(hook, requests_mock):
    requests_mock.post(STATUS_URL, text='{"a":' * 100_000 + "1" + "}" * 100_000)
    with pytest.raises(CommPeakApiError, match="nested too deep"):
        hook.get_statuses(["u1"])


def test_a_status_answer_over_the_bound_is_an_api_error(hook, requests_mock):
    from airflow_provider_commpeak._engine.classify import MAX_ANSWER_BYTES

    requests_mock.post(STATUS_URL, content=b" " * (MAX_ANSWER_BYTES + 1))
    with pytest.raises(CommPeakApiError, match="dropped unread"):
        hook.get_statuses(["u1"])


def test_an_unfamiliar_status_is_warned_about_once(hook, requests_mock, logs):
    requests_mock.post(STATUS_URL, json={"messages": [{"uuid": "u1", "status": "expired"}]})
    assert hook.get_statuses(["u1"]) == {"u1": "expired"}
    hook.get_statuses(["u1"])
    assert logs.count("not known to use, 'expired'") == 1


def test_one_outcome_whatever_the_sink(hook, requests_mock, tmp_path):
    """Counts are kept the same way with results in memory or in a file; the XCom form follows."""
    from airflow_provider_commpeak.hooks.commpeak import SendOutcome, SendReport, SendSummary

    requests_mock.post(SEND_URL, json=send_answer(("m0", "u0", None), ("m1", None, "INVALID_RECIPIENT")))
    in_memory = hook.send_messages([message(0), message(1)])
    in_file = hook.send_messages([message(0), message(1)], report_path=str(tmp_path / "r.csv"))
    assert type(in_memory) is type(in_file) is SendOutcome
    assert SendReport is SendSummary is SendOutcome  # the 1.1 names, kept
    for outcome in (in_memory, in_file):
        assert (outcome.messages, outcome.accepted, outcome.failed) == (2, 1, 1)
        assert outcome.errors_by_kind() == {"INVALID_RECIPIENT": 1}
    assert in_memory.to_dict()["results"]["m0"] == {"message_uuid": "u0", "error": None, "task_id": "t"}
    assert [row.split(",") for row in (tmp_path / "r.csv").read_text().splitlines()] == [
        ["internal_id", "message_uuid", "error", "task_id", "line"],
        ["m0", "u0", "", "t", ""],  # a list has no lines
        ["m1", "", "INVALID_RECIPIENT", "t", ""],
    ]
    assert in_file.to_dict() == {
        "report_path": str(tmp_path / "r.csv"),
        "messages": 2,
        "accepted": 1,
        "failed": 1,
        "errors": {"INVALID_RECIPIENT": 1},
    }


def test_a_burst_of_bare_429s_costs_a_short_pause_not_a_slow_pace(commpeak_conn, clock, requests_mock):
    """An edge answers 429 without Retry-After for 1 s: brief pauses; the pace is never slowed."""
    hook = CommPeakHook(clock=clock, sleep=clock.sleep)
    start = clock()
    refused: list[float] = []

    def answer(request, context):
        if 0.05 <= clock() - start < 1.05:  # the burst: a second of bare 429s
            refused.append(clock())
            context.status_code = 429
            return {"detail": "Too Many Requests"}
        clock.sleep(0.025)  # each accepted request takes 25 ms
        return accepted_answer(request, context)

    requests_mock.post(SEND_URL, json=answer)
    report = hook.send_messages([message(i, phone=f"97252{i:07d}") for i in range(2000)], max_concurrency=1)
    assert report.accepted == 2000
    assert len(refused) >= 3
    extra = clock() - start - 20 * 0.025
    assert extra < 1.5, f"a 1 s burst of bare 429s cost {extra:.2f} s"
    assert hook.rate_controller.rate is None  # never paced: a burst of 429s is not the API's rate


def test_bare_429s_that_go_on_slow_the_pace_and_the_waits_grow(commpeak_conn, clock, requests_mock):
    hook = CommPeakHook(clock=clock, sleep=clock.sleep)
    start = clock()
    waits: list[float] = []
    pause = hook.rate_controller.pause

    def recording(seconds: float) -> None:
        waits.append(seconds)
        pause(seconds)

    hook.rate_controller.pause = recording  # type: ignore[method-assign]

    def answer(request, context):
        if clock() - start < 6:  # six seconds of bare 429s: no longer a burst
            context.status_code = 429
            return {"detail": "Too Many Requests"}
        return accepted_answer(request, context)

    requests_mock.post(SEND_URL, json=answer)
    assert hook.send_messages([message(0)], max_concurrency=1).accepted == 1
    assert hook.rate_controller.rate is not None
    assert max(waits) > 4 * min(waits)  # grown past the first short waits


# -- max_rate --------------------------------------------------------------------------------------


def test_max_rate_paces_every_send_of_the_hook_from_the_first_request(commpeak_conn, clock, requests_mock):
    """
    At most ``max_rate`` msg/s from the first request on (no burst first), over all the hook's sends.
    One sender, so the fake clock moves only by its own waits (the sandbox test runs four).
    """
    hook = CommPeakHook(max_rate=200, clock=clock, sleep=clock.sleep)
    sent: list[tuple[float, int]] = []

    def answer(request, context):
        sent.append((clock(), len(request.json()["messages"])))
        return accepted_answer(request, context)

    requests_mock.post(SEND_URL, json=answer)
    start = clock()
    for prefix in ("97252", "97253"):
        messages = [message(i, phone=f"{prefix}{i:07d}") for i in range(1000)]
        assert hook.send_messages(messages, max_concurrency=1).accepted == 1000
    slot = int(200 * BURST)  # BURST seconds' worth per request, not batches of 100
    assert sum(n for _, n in sent) == 2000
    assert max(n for _, n in sent) == slot
    for i, (at, _) in enumerate(sent):
        assert sum(n for t, n in sent[i:] if t < at + 1.0) <= 200 + slot
    assert clock() - start >= (2000 - slot) / 200


def test_max_rate_is_logged_and_kept_under_pushback(commpeak_conn, clock, requests_mock, logs):
    hook = CommPeakHook(max_rate=1000, clock=clock, sleep=clock.sleep)
    requests_mock.post(SEND_URL, json=rate_limited(accept=30))
    assert hook.send_messages([message(i, phone=f"97252{i:07d}") for i in range(600)]).accepted == 600
    assert "At most 1,000 message(s) a second (max_rate): 1.0 s for every 1,000 sent" in logs.text
    assert hook.rate_controller.rate < 1000  # the API pushed back: the rules paced below the ceiling
