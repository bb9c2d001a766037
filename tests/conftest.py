"""Shared fixtures. Airflow is configured here, before any test imports it."""

from __future__ import annotations

import json
import os
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="commpeak-airflow-home-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


def _dags_folder() -> str:
    """One folder holding the example DAGs and the tests' own (``dag.test()`` syncs only that folder)."""
    folder = Path(tempfile.mkdtemp(prefix="commpeak-dags-"))
    for source in [*(REPO / "example_dags").glob("*.py"), *(REPO / "tests" / "dags").glob("*.py")]:
        (folder / source.name).symlink_to(source)
    return str(folder)


os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = _dags_folder()
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ.pop("AIRFLOW_CONN_COMMPEAK_DEFAULT", None)
if version("apache-airflow").startswith("2."):
    os.environ["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"  # Airflow 2 refuses SQLite otherwise

API_KEY = "test-key-5f0c2d9a"
BASE_URL = "https://sendsms.commpeak.com"
SEND_URL = f"{BASE_URL}/simple_send/"
STATUS_URL = f"{BASE_URL}/messages_status/"


@pytest.fixture
def commpeak_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``commpeak_default`` connection to the real base URL (only ever reached through requests-mock)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_COMMPEAK_DEFAULT", json.dumps({"conn_type": "commpeak", "password": API_KEY})
    )
    return "commpeak_default"


class SleepRecorder:
    """Stands in for the ``time`` module in the hook: records each sleep instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> SleepRecorder:
    """Record the hook's backoff sleeps without sleeping."""
    from airflow_provider_commpeak.hooks import commpeak as hook_module

    recorder = SleepRecorder()
    monkeypatch.setattr(hook_module, "time", recorder)
    return recorder


def message(i: int, phone: str = "972524265292", **overrides: Any) -> dict[str, Any]:
    """A valid message with internal_id ``m<i>``."""
    return {
        "internal_id": f"m{i}",
        "sender": "GLOBAL",
        "recipient_phone": phone,
        "message_content": f"test message {i}",
        **overrides,
    }


def accepted_answer(request: Any, context: Any) -> dict[str, Any]:
    """A requests-mock callback accepting every message of the request."""
    messages = request.json()["messages"]
    return {
        "status": True,
        "task_id": "task-1",
        "messages": [
            {"internal_id": m["internal_id"], "message_uuid": f"uuid-{m['internal_id']}", "error": None}
            for m in messages
        ],
    }


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """An initialised SQLite metadata database in this session's AIRFLOW_HOME (for ``dag.test()``)."""
    from airflow.utils import db

    db.initdb()


#: Figures of each fault-suite scenario, printed as a table at the end of the run.
FAULT_FIGURES: list[dict[str, Any]] = []

FAULT_COLUMNS = (
    "scenario",
    "fault",
    "messages",
    "accepted",
    "unconfirmed",
    "unconfirmed_but_accepted",
    "failed_other",
    "lost",
    "duplicated",
    "requests",
    "errors",
)


def fault_matrix() -> str:
    """The fault suite's figures as a Markdown table."""
    lines = ["| " + " | ".join(FAULT_COLUMNS) + " |", "|" + "---|" * len(FAULT_COLUMNS)]
    lines += ["| " + " | ".join(str(row[c]) for c in FAULT_COLUMNS) + " |" for row in FAULT_FIGURES]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FAULT_FIGURES:
        terminalreporter.section("fault matrix (docs/reliability.md)")
        terminalreporter.write_line(fault_matrix())
        target = os.environ.get("COMMPEAK_FAULT_MATRIX")
        if target:
            Path(target).write_text(fault_matrix() + "\n")


def send_answer(*results: tuple[str, str | None, str | None], task_id: str = "t") -> dict[str, Any]:
    """A ``simple_send`` answer naming each ``(internal_id, message_uuid, error)``, in order."""
    return {
        "status": True,
        "task_id": task_id,
        "messages": [{"internal_id": i, "message_uuid": u, "error": e} for i, u, e in results],
    }
