"""Fixtures, and the Airflow settings the suite needs (set in ``pytest_configure``, before Airflow loads)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from helpers import API_KEY
from helpers.faults import FAULT_FIGURES, fault_matrix
from helpers.readme import readme_dag

REPO = Path(__file__).resolve().parent.parent
#: Scratch folders this session made (removed when it ends).
_SCRATCH: list[str] = []


def _scratch_folder(prefix: str) -> str:
    folder = tempfile.mkdtemp(prefix=prefix)
    _SCRATCH.append(folder)
    return folder


def _dags_folder() -> str:
    """One folder holding the example DAGs and the tests' own (``dag.test()`` syncs only that folder)."""
    folder = Path(_scratch_folder("commpeak-dags-"))
    for source in [*(REPO / "example_dags").glob("*.py"), *(REPO / "tests" / "dags").glob("*.py")]:
        (folder / source.name).symlink_to(source)
    (folder / "readme_dag.py").write_text(readme_dag())
    return str(folder)


def pytest_configure(config: pytest.Config) -> None:
    """Point Airflow at a scratch home and the test DAGs before any test imports it."""
    if "AIRFLOW_HOME" not in os.environ:
        os.environ["AIRFLOW_HOME"] = _scratch_folder("commpeak-airflow-home-")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = _dags_folder()
    os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
    os.environ.pop("AIRFLOW_CONN_COMMPEAK_DEFAULT", None)
    if version("apache-airflow").startswith("2."):
        os.environ["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"  # Airflow 2 refuses SQLite otherwise
        os.environ["AIRFLOW__METRICS__TIMER_UNIT_CONSISTENCY"] = "True"  # else Airflow 2.11 warns at each run


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the scratch folders of :func:`pytest_configure` (each run made a new pair)."""
    while _SCRATCH:
        shutil.rmtree(_SCRATCH.pop(), ignore_errors=True)


@pytest.fixture
def commpeak_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``commpeak_default`` connection to the real base URL (only ever reached through requests-mock)."""
    monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", json.dumps({"conn_type": "commpeak", "password": API_KEY}))
    return "commpeak_default"


class DelayRecorder:
    """Records every retry/pushback delay the retry policy computes, and makes each one zero."""

    def __init__(self) -> None:
        self.delays: list[float] = []


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> DelayRecorder:
    """No real waiting between retries: each delay is recorded, then 0."""
    from airflow_provider_commpeak._engine.retry import RetryPolicy

    recorder = DelayRecorder()
    original = RetryPolicy.delay

    def record(self: RetryPolicy, attempt: int, retry_after: Any = None, **kwargs: Any) -> float:
        recorder.delays.append(original(self, attempt, retry_after, **kwargs))
        return 0.0

    monkeypatch.setattr(RetryPolicy, "delay", record)
    return recorder


class LogReader:
    """Everything logged so far, whether through ``logging`` or Airflow's structlog (stdout/stderr)."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
        self._caplog, self._capsys = caplog, capsys
        self._seen = ""

    @property
    def text(self) -> str:
        captured = self._capsys.readouterr()
        self._seen += captured.out + captured.err
        return self._caplog.text + self._seen

    def count(self, fragment: str) -> int:
        """How many log lines hold ``fragment`` (a line may reach both ``logging`` and stdout)."""
        self.text  # noqa: B018 - collect what was printed so far
        return max(self._caplog.text.count(fragment), self._seen.count(fragment))


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> LogReader:
    """Read every log line of the test, at DEBUG and above."""
    caplog.set_level(logging.DEBUG)
    return LogReader(caplog, capsys)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """An initialised SQLite metadata database in this session's AIRFLOW_HOME (for ``dag.test()``)."""
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A sandbox that answers at once, with ``AIRFLOW_CONN_COMMPEAK_DEFAULT`` pointing at it."""
    from airflow_provider_commpeak.sandbox import CommPeakSandbox

    with CommPeakSandbox(delivery_delay=0.1) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sb.connection_json)
        yield sb


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FAULT_FIGURES:
        terminalreporter.section("fault matrix (docs/reliability.md)")
        terminalreporter.write_line(fault_matrix())
        target = os.environ.get("COMMPEAK_FAULT_MATRIX")
        if target:
            Path(target).write_text(fault_matrix() + "\n")
