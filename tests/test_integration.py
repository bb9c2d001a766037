"""Hook, operator and sensor together against the sandbox over real HTTP, in real Airflow runs."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.sandbox import CommPeakSandbox
from helpers import message
from helpers.airflow import TEST_DAGS, dag_bag, run_state, task_states, xcom_value

pytestmark = pytest.mark.sandbox


def wait_dag(dag_id: str):
    return dag_bag(TEST_DAGS / "wait_variants.py").dags[dag_id]


def test_hook_under_a_rate_limit_gets_everything_accepted_once_with_default_settings(monkeypatch):
    with CommPeakSandbox(rate_limit=400) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sandbox.connection_json)
        report = CommPeakHook().send_messages([message(i) for i in range(1000)])
        assert report.accepted == 1000
        times = Counter(m["internal_id"] for m in sandbox.accepted)
        assert len(times) == 1000
        assert max(times.values()) == 1
        assert report.message_uuids == [
            m["message_uuid"] for m in sorted(sandbox.accepted, key=lambda m: int(m["internal_id"][1:]))
        ]


def test_max_rate_below_the_keys_limit_is_never_pushed_back(monkeypatch):
    """Four senders at most 200 msg/s on a key of 300: nothing refused, nothing early, everything once."""
    import time

    with CommPeakSandbox(rate_limit=300) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sandbox.connection_json)
        started = time.monotonic()
        report = CommPeakHook(max_rate=200).send_messages([message(i) for i in range(600)])
        took = time.monotonic() - started
        stats = sandbox.stats()
    assert (report.accepted, stats["distinct_internal_ids"], stats["duplicated"]) == (600, 600, 0)
    assert stats["refused"] == 0
    assert took >= (600 - 50) / 200  # paced from the first request: no burst of the key's first second


def test_an_api_serving_two_requests_at_a_time_costs_a_few_refused_requests_not_a_refusal_per_batch(monkeypatch):
    """A proxy answering a bare 429 to a third request in flight: the send keeps 2 in flight, probing for 3."""
    with CommPeakSandbox(max_in_flight=2, latency_ms=30) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sandbox.connection_json)
        report = CommPeakHook().send_messages([message(i) for i in range(3000)], batch_size=50, max_concurrency=4)
        stats = sandbox.stats()
    assert (report.accepted, stats["distinct_internal_ids"], stats["duplicated"]) == (3000, 3000, 0)
    served = stats["requests"]["/simple_send/"]
    assert served == 60  # every batch served once; the refused ones never reached the API
    # each refusal lowers the cap to what the API serves and one in ten answers tries one more place
    # (about 10 refusals here; before 1.4.0, about one per batch: 58)
    assert stats["over_capacity"] <= served // 2, stats


def test_status_of_every_test_number_through_the_hook(commpeak_sandbox):
    import time

    from airflow_provider_commpeak.sandbox import TEST_NUMBERS

    hook = CommPeakHook()
    report = hook.send_messages([message(i, phone=n) for i, n in enumerate(TEST_NUMBERS)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        statuses = hook.get_statuses(report.message_uuids)
        if "sent" not in list(statuses.values())[:-1]:
            break
        time.sleep(0.05)
    assert list(statuses.values()) == list(TEST_NUMBERS.values())


def reschedules() -> int:
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.query(TaskReschedule).count()


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_send_then_wait_delivered(airflow_db, monkeypatch, mode):
    """Messages stay `sent` for 1.5 s, so the sensor has to wait (reschedule, defer) at least once."""
    with CommPeakSandbox(delivery_delay=1.5) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sandbox.connection_json)
        dag = wait_dag(f"wait_delivered_{mode}")
        before = reschedules()
        dag_run = dag.test()
        accepted = sandbox.accepted
        status_requests = sandbox.requests["/messages_status/"]
    assert run_state(dag_run) == "success"
    result = xcom_value(dag.dag_id, dag_run.run_id, "wait")
    assert result["succeeded"] == 2
    assert result["failed"] == 0
    assert set(result["statuses"]) == {m["message_uuid"] for m in accepted}
    assert status_requests >= 2  # it had to ask again
    assert (reschedules() > before) == (mode == "reschedule")


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_never_final_messages_fail_at_the_timeout_naming_the_pending(
    airflow_db, commpeak_sandbox, mode, monkeypatch, tmp_path
):
    failures = tmp_path / "failures.txt"
    monkeypatch.setenv("COMMPEAK_TEST_FAILURES", str(failures))
    dag = wait_dag(f"wait_never_final_{mode}")
    dag_run = dag.test()
    assert run_state(dag_run) == "failed"
    assert task_states(dag.dag_id, dag_run.run_id) == {"send": "success", "wait": "failed"}
    [failure] = failures.read_text().splitlines()
    assert failure.startswith("AirflowSensorTimeout: "), failure
    # +1 555 000 0005 never becomes final; the other number may still be on its way on a loaded machine
    assert re.search(r"\b[12] of 2 message\(s\) still pending", failure), failure
