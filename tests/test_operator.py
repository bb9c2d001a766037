from __future__ import annotations

import json

import pytest

from airflow_provider_commpeak.exceptions import CommPeakAuthError, CommPeakSendError, CommPeakValidationError
from airflow_provider_commpeak.operators.commpeak import REPORT_KEYS, SendSmsOperator
from helpers import SEND_URL, accepted_answer, message, send_answer, sent_ids
from helpers.fakes import FakeStateStore, make_context


@pytest.fixture(autouse=True)
def _conn(commpeak_conn, delays):
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
        ({"messages": None}, "exactly one of messages"),
        ({"recipients": ["972524265292"]}, "recipients needs message_content"),
        ({"allowed_failures": -1}, "must not be negative"),
        ({"allowed_failures": 1.5}, "fraction"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 5000}, "batch_size"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"rate_limit_timeout": float("nan")}, "rate_limit_timeout"),
        ({"max_rate": 0}, "max_rate must be a number of messages per second"),
        ({"max_rate": "fast"}, "max_rate"),
        ({"max_xcom_results": -1}, "max_xcom_results"),
        ({"recipients": {"972524265292"}, "message_content": "x"}, "not a set"),
    ],
)
def test_constructor_refuses_bad_arguments(kwargs, problem):
    with pytest.raises(CommPeakValidationError, match=problem):
        operator(**kwargs)


def test_every_argument_problem_is_reported_at_once():
    with pytest.raises(CommPeakValidationError) as info:
        operator(batch_size=0, max_concurrency=0, allowed_failures=-1)
    assert len(info.value.problems) == 3


def test_template_fields():
    assert set(SendSmsOperator.template_fields) == {
        "messages",
        "recipients",
        "message_content",
        "messages_path",
        "report_path",
        "sender",
        "default_region",
        "commpeak_conn_id",
        "ledger_path",
        "opt_out_text",
        "suppression_path",
        "valid_until",
        "send_window",
    }


def test_max_attempts_is_deprecated():
    with pytest.warns(DeprecationWarning, match="max_attempts"):
        operator(max_attempts=3)


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
    assert "message 1" in info.value.problems[0]
    assert "message 2" in info.value.problems[1]
    assert requests_mock.call_count == 0


def test_generated_internal_ids_are_stable_per_task_instance_and_independent_of_order(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    numbers = ["972524265292", "972545330008", "447700900123"]

    def ids(recipients, **context_kwargs):
        operator(recipients=recipients, message_content="x", sender="S").execute(make_context(**context_kwargs))
        return {m["recipient_phone"]: m["internal_id"] for m in requests_mock.last_request.json()["messages"]}

    first = ids(numbers)
    assert first == ids(list(reversed(numbers)))
    assert len(set(first.values())) == 3
    assert all(i.startswith("af-") for i in first.values())
    assert ids(numbers, map_index=3) != first
    assert ids(numbers, run_id="manual__2") != first


def test_a_retry_with_other_recipients_sends_only_the_new_ones(requests_mock, logs):
    """After a clear, the same task instance brings a changed audience: only what is new goes out."""
    requests_mock.post(SEND_URL, json=accepted_answer)
    store = FakeStateStore()
    operator(recipients=["972524265292", "972545330008"], message_content="x", sender="S").execute(
        make_context(store=store)
    )
    requests_mock.reset_mock()
    result = operator(
        recipients=["972545330008", "447700900123", "972524265292"], message_content="x", sender="S"
    ).execute(make_context(store=store))
    assert [m["recipient_phone"] for m in requests_mock.last_request.json()["messages"]] == ["447700900123"]
    assert result["accepted"] == 3
    assert "2 message(s) settled by an earlier try of this task instance were not sent again" in logs.text


def test_report_is_returned_and_each_key_pushed_without_numbers_or_texts(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    context = make_context()
    result = operator().execute(context)
    assert result == {
        "task_ids": ["task-1"],
        "message_uuids": ["uuid-m0", "uuid-m1"],
        "results": {
            "m0": {"message_uuid": "uuid-m0", "error": None, "task_id": "task-1"},
            "m1": {"message_uuid": "uuid-m1", "error": None, "task_id": "task-1"},
        },
        "accepted": 2,
        "failed": 0,
    }
    assert context["ti"].xcom == {key: result[key] for key in REPORT_KEYS}
    dumped = json.dumps(context["ti"].xcom) + json.dumps(result)
    assert "972524265292" not in dumped
    assert "test message" not in dumped


def test_failures_over_the_allowance_fail_the_task_counting_by_kind(requests_mock):
    requests_mock.post(
        SEND_URL,
        json=send_answer(
            ("m0", "u0", None),
            ("m1", None, "INVALID_RECIPIENT"),
            ("m2", None, "INVALID_RECIPIENT"),
            ("m3", None, "BLOCKED"),
        ),
    )
    context = make_context()
    with pytest.raises(CommPeakSendError) as info:
        operator(messages=[message(i) for i in range(4)]).execute(context)
    assert "3 of 4 message(s) failed (2 INVALID_RECIPIENT, 1 BLOCKED)" in str(info.value)
    assert context["ti"].xcom["accepted"] == 1  # the report is in XCom even though the task failed
    assert info.value.report["failed"] == 3


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
    """The first try dies after batch 1 was accepted; the retry sends only what was never tried."""
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
    result = operator(messages=msgs, batch_size=2, max_concurrency=1, allowed_failures=2).execute(
        make_context(store=store)
    )
    assert sent_ids(requests_mock) == [["m4", "m5"]]  # m2, m3 were in flight when the try died
    assert result["accepted"] == 4
    assert {k: v["error"] for k, v in result["results"].items() if v["error"]} == {
        "m2": "UNCONFIRMED",
        "m3": "UNCONFIRMED",
    }


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
    assert requests_mock.call_count == 1
    assert result["accepted"] == 2


def test_without_a_ledger_it_warns_once_naming_the_option(requests_mock, logs, monkeypatch):
    monkeypatch.delenv("AIRFLOW__COMMPEAK__LEDGER_PATH", raising=False)
    requests_mock.post(SEND_URL, json=accepted_answer)
    operator().execute(make_context())
    assert logs.count("No send ledger") == 1
    assert "AIRFLOW__COMMPEAK__LEDGER_PATH" in logs.text
    assert "ledger_path=" in logs.text


def test_a_ledger_path_makes_a_retry_resend_nothing_on_any_airflow(requests_mock, tmp_path):
    """No task_state_store (Airflow 2.11-3.2): the folder ledger alone keeps the retry from resending."""
    requests_mock.post(
        SEND_URL,
        [{"json": send_answer(("m0", "u0", None), ("m1", None, "RATE_LIMIT"))}, {"status_code": 403}],
    )
    with pytest.raises(CommPeakAuthError):
        operator(ledger_path=str(tmp_path), rate_limit_timeout=1).execute(make_context())
    requests_mock.post(SEND_URL, json=accepted_answer)
    requests_mock.reset_mock()
    result = operator(ledger_path=str(tmp_path)).execute(make_context())
    assert [m["internal_id"] for m in requests_mock.last_request.json()["messages"]] == ["m1"]
    assert result["results"]["m0"] == {"message_uuid": "u0", "error": None, "task_id": "t"}  # from the ledger
    assert result["accepted"] == 2


def test_each_bound_is_the_same_wherever_the_argument_is_taken():
    """One table of bounds: the operator, the sensor, the notifier and the hook agree."""
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
    from airflow_provider_commpeak.notifications.commpeak import CommPeakSmsNotifier
    from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

    for make in (
        lambda: operator(max_segments=101),
        lambda: CommPeakSmsNotifier(recipients=["972524265292"], sender="A", max_segments=101),
    ):
        with pytest.raises(CommPeakValidationError, match="max_segments must be an int between 1 and 100"):
            make()
    with pytest.raises(CommPeakValidationError, match="batch_size must be an int between 1 and 1000"):
        operator(batch_size=1001)
    with pytest.raises(CommPeakValidationError, match="batch_size must be an int between 1 and 1000"):
        CommPeakHook().send_messages([message(0)], batch_size=1001)
    with pytest.raises(CommPeakValidationError, match="status_batch_size must be an int between 1 and 10000"):
        SmsStatusSensor(task_id="w", message_uuids=["u"], status_batch_size=10_001)
    with pytest.raises(CommPeakValidationError, match="batch_size must be an int between 1 and 10000"):
        CommPeakHook().get_statuses(["u"], batch_size=10_001)
    for value in (0, 86401, float("nan"), True):
        with pytest.raises(CommPeakValidationError, match="rate_limit_timeout must be a number of seconds"):
            operator(rate_limit_timeout=value)
        with pytest.raises(CommPeakValidationError, match="rate_limit_timeout must be a number of seconds"):
            CommPeakHook(rate_limit_timeout=value)
    for value in (0.001, 1_000_001, float("inf"), False):
        with pytest.raises(CommPeakValidationError, match="max_rate must be a number of messages per second"):
            operator(max_rate=value)
        with pytest.raises(CommPeakValidationError, match="max_rate must be a number of messages per second"):
            CommPeakHook(max_rate=value)
