"""
A real deployment: Airflow's own processes on 127.0.0.1 run the send-then-wait example.

Starts ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` with a SQLite
database in a temporary AIRFLOW_HOME and the sandbox in this process, triggers
``commpeak_send_and_wait`` through the REST API, and asserts the run succeeded with the sensor
deferred and resumed by the real triggerer. Bounded in time; every process it starts is stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from importlib.metadata import version

import pytest

from airflow_provider_commpeak.sandbox import CommPeakSandbox
from helpers import poll, window_in_israel
from helpers.airflow import TEST_DAGS
from helpers.deployment import RUN_SECONDS, Api, Deployment, airflow_deployment

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

DAG_ID = "commpeak_send_and_wait"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not version("apache-airflow").startswith("3."):
        pytest.skip("drives Airflow 3's REST API v2 and its separate dag-processor; 2.11 is covered by dag.test()")
    scratch = tmp_path_factory.mktemp("e2e-tmp")  # the processes' temporary folder (example report files)
    with (
        CommPeakSandbox(delivery_delay=8) as sandbox,
        airflow_deployment(
            tmp_path_factory.mktemp("e2e") / "airflow-home",
            extra_env={"AIRFLOW_CONN_COMMPEAK_DEFAULT": sandbox.connection_json, "TMPDIR": str(scratch)},
            extra_dags=(TEST_DAGS / "retry_campaign.py", TEST_DAGS / "quiet_hours_campaign.py"),
        ) as running,
    ):
        running.sandbox = sandbox
        yield running


def test_send_and_wait_deferred_by_the_real_triggerer(deployment):
    sandbox = deployment.sandbox
    sandbox.reset()
    api = Api(deployment)
    run_id = api.trigger(DAG_ID)
    seen_states: list[str] = []

    def finished() -> str | None:
        ti = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/wait_for_delivery").json()
        if ti.get("state") and (not seen_states or seen_states[-1] != ti["state"]):
            seen_states.append(ti["state"])
        return api.run_state(DAG_ID, run_id)

    assert poll("the DAG run to finish", finished, RUN_SECONDS, interval=0.3) == "success", seen_states
    assert "deferred" in seen_states, f"the sensor never deferred: {seen_states}"
    assert seen_states[-1] == "success"

    summary = api.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/summarise/xcomEntries/return_value").json()
    assert summary["value"] == {"sent": 4, "send_failed": 0, "delivered": 3, "delivery_failed": 1}
    assert len(sandbox.accepted) == 4
    assert all(m["times_accepted"] == 1 for m in sandbox.accepted)
    # the triggerer process ran the trigger: its log for this task instance says it fired
    trigger_logs = list((deployment.home / "logs").glob(f"dag_id={DAG_ID}/*/task_id=wait_for_delivery/*.trigger.*"))
    assert trigger_logs, "no triggerer log for the sensor"
    assert "Trigger fired event" in "".join(p.read_text(errors="replace") for p in trigger_logs)

    send_log, wait_log = (
        api.task_log(DAG_ID, run_id, "send"),
        api.task_log(DAG_ID, run_id, "wait_for_delivery"),
    )
    assert "Sent 4 message(s)" in send_log
    assert "4 accepted, 0 failed" in send_log
    assert "Waiting for delivery:" in wait_log
    assert "pending" in wait_log
    assert "Delivery: 3 delivered, 1 undelivered, 0 pending of 4; 1 failed, 1 allowed" in wait_log
    assert "972524265292" not in send_log + wait_log


def test_a_missed_deadline_texts_once_from_the_triggerer(deployment):
    """A Deadline Alert (Airflow >= 3.1): the scheduler marks the deadline missed, the triggerer texts."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_1_PLUS:
        pytest.skip("Deadline Alerts need Airflow >= 3.1")
    sandbox = deployment.sandbox
    sandbox.reset()
    api = Api(deployment)
    run_id = api.trigger("commpeak_deadline_alert")
    [alert] = poll("the deadline alert SMS", lambda: sandbox.accepted, RUN_SECONDS, interval=0.5)
    assert alert["message_content"] == f"Airflow: commpeak_deadline_alert missed its deadline, run {run_id}"
    assert (alert["recipient_phone"], alert["sender"]) == ("972524265292", "ALERTS")
    assert (
        poll("the slow run to finish", lambda: api.run_state("commpeak_deadline_alert", run_id), RUN_SECONDS)
        == "success"
    )
    assert len(sandbox.accepted) == 1


@pytest.mark.parametrize("store", ["task_state_store", "ledger_path"])
def test_a_retry_and_a_clear_by_a_real_scheduler_resend_nothing_accepted(deployment, tmp_path, store):
    """Try 1 gets 200 of 500 accepted, then a 403; Airflow retries; then a user clears the task."""
    from collections import Counter

    sandbox = deployment.sandbox
    sandbox.reset()
    sandbox.inject("403", after=4)
    api = Api(deployment)
    dag_id = "commpeak_retry_campaign"
    conf = {"ledger_path": str(tmp_path / "ledger") if store == "ledger_path" else ""}
    run_id = api.trigger(dag_id, conf)
    assert poll("the retried run to finish", lambda: api.run_state(dag_id, run_id), RUN_SECONDS, 0.5) == "success"
    first = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/send").json()
    assert first["try_number"] == 2, first
    times = Counter(m["internal_id"] for m in sandbox.accepted)
    assert (len(times), max(times.values())) == (500, 1)

    api.clear(dag_id, run_id, "send")
    cleared = lambda: api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/send").json()  # noqa: E731
    poll("the cleared task to run again", lambda: cleared()["try_number"] > 2 or None, RUN_SECONDS, 0.5)
    assert poll("the cleared run to finish", lambda: api.run_state(dag_id, run_id), RUN_SECONDS, 0.5) == "success"
    times = Counter(m["internal_id"] for m in sandbox.accepted)
    assert (len(times), max(times.values())) == (500, 1), "a Clear resent accepted messages"
    log = api.task_log(dag_id, run_id, "send", try_number=cleared()["try_number"])
    assert "500 message(s) settled by an earlier try" in log


def test_a_campaign_whose_window_opens_soon_defers_in_the_real_triggerer_and_sends_each_once(deployment):
    """The recipients' (Israel's) window opens 30 s from now: the task defers, the triggerer wakes it on time."""
    import time
    from collections import Counter
    from datetime import datetime

    opens, closes = window_in_israel(lead=30)
    sandbox = deployment.sandbox
    sandbox.reset()
    api = Api(deployment)
    dag_id = "commpeak_quiet_hours"
    opens_monotonic = time.monotonic() + (opens - datetime.now(UTC)).total_seconds()
    conf = {"window_start": opens.time().isoformat("seconds"), "window_end": closes.time().isoformat("seconds")}
    run_id = api.trigger(dag_id, conf)
    seen: list[str] = []

    def finished() -> str | None:
        state = api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/send").json().get("state")
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        return api.run_state(dag_id, run_id)

    assert poll("the deferred campaign to finish", finished, RUN_SECONDS + 60, 0.5) == "success", seen
    assert "deferred" in seen, f"the send never deferred: {seen}"
    times = Counter(m["internal_id"] for m in sandbox.accepted)
    assert (len(times), max(times.values())) == (40, 1)
    first = min(m["accepted_at"] for m in sandbox.accepted)  # the sandbox runs in this process: same clock
    assert first >= opens_monotonic - 0.05, f"sent {opens_monotonic - first:.1f} s before the window opened"


def test_a_report_asset_schedules_the_followup_dag_which_reads_the_report(deployment):
    """The send's outlet is its report file: the real scheduler runs the DAG scheduled on that asset."""
    sandbox = deployment.sandbox
    sandbox.reset()
    api = Api(deployment)
    followup = "commpeak_report_followup"
    poll("the follow-up DAG to be parsed", lambda: api.get(f"/api/v2/dags/{followup}").ok, RUN_SECONDS, 0.5)
    before = {r["dag_run_id"] for r in api.get(f"/api/v2/dags/{followup}/dagRuns").json()["dag_runs"]}
    send_run = api.trigger("commpeak_report_send")
    assert poll("the send to finish", lambda: api.run_state("commpeak_report_send", send_run), RUN_SECONDS, 0.5) == (
        "success"
    )

    def followup_finished() -> dict | None:
        runs = [
            r for r in api.get(f"/api/v2/dags/{followup}/dagRuns").json()["dag_runs"] if r["dag_run_id"] not in before
        ]
        return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

    run = poll("the follow-up run the asset event schedules", followup_finished, RUN_SECONDS, 0.5)
    assert (run["state"], run["run_type"]) == ("success", "asset_triggered")
    assert sorted(m["recipient_phone"] for m in sandbox.accepted) == ["15550000001", "447700900123"]
    summary = api.xcom(followup, run["dag_run_id"], "read_report")
    assert (summary["rows"], summary["outcomes"]) == (3, {"ACCEPTED": 2, "INVALID_RECIPIENT": 1})
    log = api.task_log(followup, run["dag_run_id"], "read_report")
    assert "Triggered by the send's asset event: {'messages': 3, 'accepted': 2, 'failed': 1" in log
