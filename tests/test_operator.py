from __future__ import annotations

import json

import pytest
from conftest import SEND_URL, accepted_answer, message, send_answer
from fakes import FakeStateStore, make_context

from airflow_provider_commpeak.exceptions import CommPeakAuthError, CommPeakSendError, CommPeakValidationError
from airflow_provider_commpeak.operators.commpeak import REPORT_KEYS, SendSmsOperator


@pytest.fixture(autouse=True)
def _conn(commpeak_conn, sleeps):
    """Every test here talks to requests-mock through the default connection, sleeping never."""


def operator(**kwargs) -> SendSmsOperator:
    kwargs.setdefault("task_id", "send")
    if not {"messages", "recipients", "messages_path"} & set(kwargs):
        kwargs["messages"] = [message(0), message(1)]
    return SendSmsOperator(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        (
            {"messages": [message(0)], "recipients": ["972524265292"], "message_content": "x"},
            "exactly one of messages",
        ),
        ({"messages_path": "m.jsonl"}, "messages_path needs report_path"),
        ({"messages": None}, "exactly one of messages"),
        ({"recipients": ["972524265292"]}, "recipients needs message_content"),
        ({"allowed_failures": -1}, "must not be negative"),
        ({"allowed_failures": 1.5}, "fraction"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_constructor_refuses_bad_arguments(kwargs, problem):
    with pytest.raises(CommPeakValidationError, match=problem):
        operator(**kwargs)


def test_template_fields():
    assert set(SendSmsOperator.template_fields) == {
        "messages",
        "recipients",
        "message_content",
        "messages_path",
        "report_path",
        "sender",
        "commpeak_conn_id",
    }


def test_shorthand_sends_one_text_to_each_number_as_digits(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    op = operator(recipients=["972524265292", "+972 54-533-0008"], message_content="Hello", sender="GLOBAL")
    result = op.execute(make_context())
    sent = requests_mock.last_request.json()["messages"]
    assert [(m["recipient_phone"], m["message_content"], m["sender"]) for m in sent] == [
        ("972524265292", "Hello", "GLOBAL"),
        ("972545330008", "Hello", "GLOBAL"),
    ]
    assert result["accepted"] == 2


def test_recipients_must_be_a_list(requests_mock):
    op = operator(recipients="972524265292", message_content="Hello", sender="S")
    with pytest.raises(CommPeakValidationError, match="recipients must be a list"):
        op.execute(make_context())
    assert requests_mock.call_count == 0


def test_invalid_input_sends_nothing_and_lists_every_problem(requests_mock):
    op = operator(messages=[message(0), message(1, phone="12"), message(2, message_content="")])
    with pytest.raises(CommPeakValidationError) as info:
        op.execute(make_context())
    assert len(info.value.problems) == 2
    assert "message 1" in info.value.problems[0] and "message 2" in info.value.problems[1]
    assert requests_mock.call_count == 0


def test_generated_internal_ids_are_stable_per_task_instance(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    msgs = [{"recipient_phone": "972524265292", "message_content": "x", "sender": "S"}] * 2

    def ids(**context_kwargs):
        operator(messages=msgs).execute(make_context(**context_kwargs))
        return [m["internal_id"] for m in requests_mock.last_request.json()["messages"]]

    first = ids()
    assert first == ids()
    assert first[0].endswith("-0") and first[1].endswith("-1")
    assert ids(map_index=3) != first
    assert ids(run_id="manual__2") != first


def test_report_is_returned_and_each_key_pushed_without_numbers_or_texts(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    context = make_context()
    result = operator().execute(context)
    assert result == {
        "task_ids": ["task-1"],
        "message_uuids": ["uuid-m0", "uuid-m1"],
        "results": {
            "m0": {"message_uuid": "uuid-m0", "error": None},
            "m1": {"message_uuid": "uuid-m1", "error": None},
        },
        "accepted": 2,
        "failed": 0,
    }
    assert context["ti"].xcom == {key: result[key] for key in REPORT_KEYS}
    dumped = json.dumps(context["ti"].xcom) + json.dumps(result)
    assert "972524265292" not in dumped and "test message" not in dumped


def rate_limited_forever(request, context):
    first = request.json()["messages"][0]
    return {
        "status": True,
        "task_id": "t",
        "messages": [{"internal_id": first["internal_id"], "message_uuid": None, "error": "RATE_LIMIT"}],
    }


def test_failures_over_the_allowance_fail_the_task_counting_by_kind(requests_mock):
    requests_mock.post(
        SEND_URL,
        json=send_answer(("m0", "u0", None), ("m1", None, "INVALID_RECIPIENT"), ("m2", None, "RATE_LIMIT")),
    )
    context = make_context()
    with pytest.raises(CommPeakSendError) as info:
        operator(messages=[message(i) for i in range(3)], max_attempts=2).execute(context)
    assert "2 of 3 message(s) failed (1 INVALID_RECIPIENT, 1 RATE_LIMIT)" in str(info.value)
    assert context["ti"].xcom["accepted"] == 1  # the report is in XCom even though the task failed
    assert info.value.report["failed"] == 2


@pytest.mark.parametrize(("allowed", "fails"), [(1, False), (0, True), (0.5, False), (0.25, True)])
def test_allowed_failures_count_or_fraction(requests_mock, allowed, fails):
    requests_mock.post(
        SEND_URL,
        json=send_answer(("m0", None, "INVALID_RECIPIENT"), ("m1", "u1", None)),
    )
    op = operator(allowed_failures=allowed)
    if fails:
        with pytest.raises(CommPeakSendError):
            op.execute(make_context())
    else:
        assert op.execute(make_context())["failed"] == 1


def test_auth_error_publishes_the_report_then_raises(requests_mock):
    requests_mock.post(SEND_URL, status_code=403, json={"detail": "Not authenticated"})
    context = make_context()
    with pytest.raises(CommPeakAuthError):
        operator().execute(context)
    assert context["ti"].xcom["failed"] == 2
    assert context["ti"].xcom["results"]["m0"]["error"] == "NOT_SENT"


def test_a_retried_try_resends_nothing_accepted(requests_mock):
    """The first try dies after batch 1 was accepted; the retry sends only batches 2 and 3."""
    calls = {"n": 0}

    def accept_then_die(request, context):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("worker killed")  # not an HTTP error: the try dies here
        return accepted_answer(request, context)

    requests_mock.post(SEND_URL, json=accept_then_die)
    store = FakeStateStore()
    msgs = [message(i) for i in range(6)]
    with pytest.raises(KeyboardInterrupt):
        operator(messages=msgs, batch_size=2, max_concurrency=1).execute(make_context(store=store))
    requests_mock.reset_mock()
    result = operator(messages=msgs, batch_size=2, max_concurrency=1).execute(make_context(store=store))
    resent = [m["internal_id"] for r in requests_mock.request_history for m in r.json()["messages"]]
    assert resent == ["m2", "m3", "m4", "m5"]
    assert result["accepted"] == 6 and result["message_uuids"] == [f"uuid-m{i}" for i in range(6)]


def test_unconfirmed_messages_are_not_resent_by_a_retry_unless_asked(requests_mock):
    store = FakeStateStore()
    requests_mock.post(SEND_URL, status_code=504)
    with pytest.raises(CommPeakSendError, match="2 UNCONFIRMED"):
        operator().execute(make_context(store=store))

    requests_mock.post(SEND_URL, json=accepted_answer)
    requests_mock.reset_mock()
    with pytest.raises(CommPeakSendError, match="2 UNCONFIRMED"):
        operator().execute(make_context(store=store))
    assert requests_mock.call_count == 0

    result = operator(resend_unconfirmed=True).execute(make_context(store=store))
    assert requests_mock.call_count == 1 and result["accepted"] == 2


def test_without_a_state_store_it_warns_once(requests_mock, capsys, caplog):
    requests_mock.post(SEND_URL, json=accepted_answer)
    operator().execute(make_context())
    logs = capsys.readouterr().out + caplog.text
    assert logs.count("no task_state_store") == 1
