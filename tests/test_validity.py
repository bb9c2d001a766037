"""``valid_until`` / ``valid_for``: a message not accepted by then is never sent late; it is ``EXPIRED``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_commpeak.exceptions import CommPeakSendError, CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from helpers import SEND_URL, accepted_answer, message
from helpers.fakes import make_context
from helpers.ratesim import FakeClock


@pytest.fixture(autouse=True)
def _conn(commpeak_conn, delays):
    """requests-mock behind the default connection; no real waiting."""


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_a_deadline_already_passed_sends_nothing_and_reports_expired(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    outcome = CommPeakHook().send_messages([message(0), message(1, phone="972545330008")], valid_until=soon(-1))
    assert requests_mock.call_count == 0
    assert {k: v["error"] for k, v in outcome.results.items()} == {"m0": "EXPIRED", "m1": "EXPIRED"}
    assert outcome.failed == 2  # expired is a failure: the recipient got nothing


def test_expiry_during_a_rate_limit_wait_stops_sending_on_time(requests_mock, logs):
    clock = FakeClock()
    hook = CommPeakHook(clock=clock, sleep=clock.sleep, rate_limit_timeout=600)
    times: list[float] = []

    def refuse(request, context):
        times.append(clock())
        return {
            "status": True,
            "task_id": "t",
            "messages": [
                {"internal_id": m["internal_id"], "message_uuid": None, "error": "RATE_LIMIT"}
                for m in request.json()["messages"]
            ],
        }

    requests_mock.post(SEND_URL, json=refuse)
    start = clock()
    outcome = hook.send_messages(
        [message(i, phone=f"97252{i:07d}") for i in range(20)], batch_size=5, valid_until=soon(30)
    )
    assert set(outcome.errors) == {"EXPIRED"}
    assert outcome.messages == 20
    assert times, "nothing was tried before the deadline"
    assert max(times) < start + 30.5, "a request started after the messages expired"
    assert clock() - start < 60, "the send waited far past the deadline"
    assert "20 message(s) not accepted by then are not sent (EXPIRED)" in logs.text


def test_messages_accepted_in_time_stand(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    outcome = CommPeakHook().send_messages([message(0)], valid_until=soon(600))
    assert outcome.accepted == 1


def test_the_operator_counts_valid_for_from_the_runs_start(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)

    class DagRun:
        start_date = datetime.now(UTC) - timedelta(minutes=11)

    context = make_context()
    context["dag_run"] = DagRun()
    op = SendSmsOperator(task_id="send", messages=[message(0)], valid_for=timedelta(minutes=10))
    with pytest.raises(CommPeakSendError, match="1 EXPIRED"):
        op.execute(context)
    assert requests_mock.call_count == 0
    DagRun.start_date = datetime.now(UTC)
    assert SendSmsOperator(task_id="send", messages=[message(0)], valid_for=600).execute(context)["accepted"] == 1


def test_a_templated_valid_until_is_read_as_iso_8601(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    op = SendSmsOperator(task_id="send", messages=[message(0)], valid_until="{{ ts }}")
    op.valid_until = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()  # what rendering gives
    assert op.execute(make_context())["accepted"] == 1


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"valid_for": 0}, "valid_for must be a positive timedelta or number of seconds"),
        ({"valid_for": timedelta(seconds=-5)}, "valid_for must be a positive"),
        ({"valid_until": datetime(2030, 1, 1)}, "valid_until must be timezone-aware"),
        ({"valid_until": "tomorrow"}, "valid_until must be a datetime, got str"),
    ],
)
def test_bad_validity_is_refused_at_dag_parse(kwargs, problem):
    with pytest.raises(CommPeakValidationError, match=problem):
        SendSmsOperator(task_id="send", messages=[message(0)], **kwargs)


def test_the_hook_refuses_a_naive_deadline():
    with pytest.raises(CommPeakValidationError, match="timezone-aware"):
        CommPeakHook().send_messages([message(0)], valid_until=datetime.now())
