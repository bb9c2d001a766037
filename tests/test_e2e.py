"""
A real deployment: Airflow's own processes on 127.0.0.1 run the send-then-wait example.

Starts ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` with a SQLite
database in a temporary AIRFLOW_HOME and the sandbox in this process, triggers
``commpeak_send_and_wait`` through the REST API, and asserts the run succeeded with the sensor
deferred and resumed by the real triggerer. Bounded in time; every process it starts is stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_commpeak.sandbox import CommPeakSandbox

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

AIRFLOW_3 = __import__("importlib.metadata").metadata.version("apache-airflow").startswith("3.")
EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"
DAG_ID = "commpeak_send_and_wait"
STARTUP_SECONDS = 180
RUN_SECONDS = 240


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def poll(what: str, check, timeout: float, interval: float = 0.5) -> Any:
    """Call ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not AIRFLOW_3:
        pytest.skip("drives Airflow 3's REST API v2 and its separate dag-processor")
    home = tmp_path_factory.mktemp("e2e") / "airflow-home"
    home.mkdir()
    port = free_port()
    with CommPeakSandbox(delivery_delay=8) as sandbox:
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW_CONN_COMMPEAK_DEFAULT": sandbox.connection_json,
        }
        airflow = str(Path(sys.executable).with_name("airflow"))
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
        processes: dict[str, subprocess.Popen] = {}
        try:
            for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
                log = open(home / f"{name}.log", "wb")  # noqa: SIM115 - the process writes it until the end
                processes[name] = subprocess.Popen(
                    [airflow, name], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            yield {
                "url": f"http://127.0.0.1:{port}",
                "sandbox": sandbox,
                "home": home,
                "processes": processes,
            }
        finally:
            for process in processes.values():
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)


class Api:
    """The REST API of the deployment, failing fast (with the log's tail) if a process died."""

    def __init__(self, deployment: dict[str, Any]) -> None:
        self.deployment = deployment
        self.url = deployment["url"]
        self.headers = {"Authorization": f"Bearer {poll('the API server', self._token, STARTUP_SECONDS)}"}

    def alive(self) -> None:
        for name, process in self.deployment["processes"].items():
            if process.poll() is not None:
                tail = (self.deployment["home"] / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"airflow {name} exited with {process.returncode}:\n{tail}")

    def _token(self) -> str | None:
        self.alive()
        try:
            answer = requests.get(f"{self.url}/auth/token", timeout=5)
        except requests.ConnectionError:
            return None
        return answer.json()["access_token"] if answer.ok else None

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        self.alive()
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.get(f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def trigger(self, dag_id: str) -> str:
        poll(f"DAG {dag_id} to be parsed", lambda: self.get(f"/api/v2/dags/{dag_id}").ok, STARTUP_SECONDS)
        answer = requests.post(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None},
            headers=self.headers,
            timeout=10,
        )
        assert answer.ok, answer.text
        return answer.json()["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        """The task's log as a user reads it in the UI (try 1)."""
        answer = self.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        assert answer.ok, answer.text
        content = answer.json()["content"]
        return "\n".join(str(e.get("event", e)) if isinstance(e, dict) else str(e) for e in content)


def test_send_and_wait_deferred_by_the_real_triggerer(deployment):
    sandbox = deployment["sandbox"]
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
    trigger_logs = list((deployment["home"] / "logs").glob(f"dag_id={DAG_ID}/*/task_id=wait_for_delivery/*.trigger.*"))
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
    sandbox = deployment["sandbox"]
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
