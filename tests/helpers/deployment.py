"""
A real Airflow 3 deployment on 127.0.0.1 for end-to-end tests: its processes, its REST API.

Each process runs in its own process group and is stopped (SIGTERM, then SIGKILL) when the
deployment ends, whatever happened; nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from helpers import free_port, poll

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
STARTUP_SECONDS = 180
RUN_SECONDS = 300


def stop_process(process: subprocess.Popen[Any], grace: float = 30) -> None:
    """Stop a process started in its own session: SIGTERM to its group, SIGKILL if it lingers."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@dataclass
class Deployment:
    """Airflow's processes, started by :func:`airflow_deployment`."""

    home: Path
    url: str
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[Any]] = field(default_factory=dict)
    #: Whatever else the test keeps with the deployment (a sandbox, say).
    sandbox: Any = None

    def start(self, name: str, *command: str, **extra_env: str) -> subprocess.Popen[Any]:
        """Start ``airflow <command>`` (or another program) with its log in the home folder."""
        airflow = str(Path(sys.executable).with_name("airflow"))
        argv = [airflow, *command] if not command[0].startswith("/") else list(command)
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - the process writes it until it stops
        self.processes[name] = subprocess.Popen(
            argv, env={**self.env, **extra_env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self.processes[name]

    def alive(self) -> None:
        """Fail at once, with the log's tail, if a process died."""
        for name, process in self.processes.items():
            if process.poll() is not None and not name.startswith("killed-"):
                tail = (self.home / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited with {process.returncode}:\n{tail}")


@contextmanager
def airflow_deployment(
    home: Path, *, extra_env: dict[str, str] | None = None, extra_dags: tuple[Path, ...] = ()
) -> Iterator[Deployment]:
    """
    A migrated SQLite home, the example DAGs (and ``extra_dags``), and Airflow's API server,
    scheduler, dag-processor and triggerer.
    """
    home.mkdir(parents=True, exist_ok=True)
    dags = EXAMPLES
    if extra_dags:
        dags = home / "dags"
        dags.mkdir(exist_ok=True)
        for source in [*EXAMPLES.glob("*.py"), *extra_dags]:
            (dags / source.name).symlink_to(source)
    port = free_port()
    (home / "tmp").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "TMPDIR": str(home / "tmp"),  # the processes' temporary files (a SIGKILLed worker's too) stay here
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
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
        **(extra_env or {}),
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    deployment = Deployment(home=home, url=f"http://127.0.0.1:{port}", env=env)
    try:
        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            deployment.start(name, name)
        yield deployment
    finally:
        for process in deployment.processes.values():
            stop_process(process)


class Api:
    """The REST API of a deployment, failing fast (with the log's tail) if a process died."""

    def __init__(self, deployment: Deployment) -> None:
        self.deployment = deployment
        self.url = deployment.url
        self.headers = {"Authorization": f"Bearer {poll('the API server', self._token, STARTUP_SECONDS, 0.5)}"}

    def _token(self) -> str | None:
        self.deployment.alive()
        try:
            answer = requests.get(f"{self.url}/auth/token", timeout=5)
        except requests.ConnectionError:
            return None
        return answer.json()["access_token"] if answer.ok else None

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        self.deployment.alive()
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return requests.get(f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run once the DAG is parsed; return its run id."""
        poll(f"DAG {dag_id} to be parsed", lambda: self.get(f"/api/v2/dags/{dag_id}").ok, STARTUP_SECONDS, 0.5)
        answer = requests.post(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": conf or {}},
            headers=self.headers,
            timeout=10,
        )
        assert answer.ok, answer.text
        return answer.json()["dag_run_id"]

    def clear(self, dag_id: str, run_id: str, task_id: str) -> None:
        """Clear one task instance of a run, whatever its state (the UI's "Clear")."""
        answer = requests.post(
            f"{self.url}/api/v2/dags/{dag_id}/clearTaskInstances",
            json={"dry_run": False, "only_failed": False, "dag_run_id": run_id, "task_ids": [task_id]},
            headers=self.headers,
            timeout=10,
        )
        assert answer.ok, answer.text

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        """``success`` or ``failed`` once the run finished, else ``None``."""
        state = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
        return state if state in ("success", "failed") else None

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        answer = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
        return answer.json()["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.get(path, params={"map_index": map_index}).json()["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as a user reads it in the UI."""
        answer = self.get(
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
        assert answer.ok, answer.text
        content = answer.json()["content"]
        return "\n".join(str(e.get("event", e)) if isinstance(e, dict) else str(e) for e in content)
