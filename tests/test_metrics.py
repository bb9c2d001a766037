"""Metrics through Airflow's Stats: ``commpeak.*`` counts, tagged by dag/task, nothing personal."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

from airflow_provider_commpeak import _metrics
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from helpers import SEND_URL, accepted_answer, message
from helpers.airflow import TEST_DAGS
from helpers.fakes import make_context


class Recorder:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.gauges: dict[str, float] = {}
        self.tags: list[dict[str, str]] = []

    def incr(self, name, count=1, rate=1, *, tags=None):
        self.counts[name] = self.counts.get(name, 0) + count
        self.tags.append(tags or {})

    def gauge(self, name, value, rate=1, delta=False, *, tags=None):
        self.gauges[name] = value
        self.tags.append(tags or {})


@pytest.fixture
def stats(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(_metrics, "Stats", recorder)
    return recorder


def test_a_send_counts_messages_by_outcome_tagged_by_task(stats, commpeak_conn, delays, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    messages = [message(0), message(1, phone="972545330008"), message(2, message_content="test message 0")]
    SendSmsOperator(task_id="send", messages=messages).execute(make_context())
    assert stats.counts == {
        "commpeak.send.messages": 3,
        "commpeak.send.accepted": 2,
        "commpeak.send.errors.duplicate": 1,
        "commpeak.send.requests": 1,
    }
    assert stats.gauges == {"commpeak.send.pace": 0.0}  # never pushed back: unpaced
    assert all(tags == {"dag_id": "dag", "task_id": "send"} for tags in stats.tags)


def test_names_and_tags_hold_nothing_personal(stats, commpeak_conn, delays, requests_mock):
    requests_mock.post(
        SEND_URL,
        json=lambda request, context: {
            "status": True,
            "messages": [
                {"internal_id": m["internal_id"], "message_uuid": None, "error": "+972524265292 is blocked"}
                for m in request.json()["messages"]
            ],
        },
    )
    op = SendSmsOperator(task_id="send", messages=[message(0)], allowed_failures=1)
    op.execute(make_context())
    text = json.dumps([stats.counts, stats.gauges, stats.tags])
    assert "972524265292" not in text
    assert "commpeak.send.errors.api_error" in stats.counts  # a free-text error becomes a safe code


def read_statsd(sock: socket.socket, lines: list[str], stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        lines.extend(data.decode().splitlines())


@pytest.mark.sandbox
def test_a_real_airflow_run_reaches_a_statsd_listener(airflow_db, commpeak_sandbox):
    """``dag.test()`` in a fresh Airflow process with StatsD on, listening on 127.0.0.1."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    lines: list[str] = []
    stop = threading.Event()
    reader = threading.Thread(target=read_statsd, args=(listener, lines, stop), daemon=True)
    reader.start()
    env = {
        **os.environ,
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(listener.getsockname()[1]),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__METRICS__METRICS_ALLOW_LIST": "commpeak",
    }
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from helpers.airflow import dag_bag;"
        f"dag = dag_bag({str(TEST_DAGS / 'pii_check.py')!r}).dags['pii_check'];"
        "dag.test()"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        deadline = threading.Event()
        for _ in range(50):  # the last packets may still be in flight: poll with a deadline
            if any(line.startswith("airflow.commpeak.alerts.sent") for line in lines):
                break
            deadline.wait(0.1)
    finally:
        stop.set()
        reader.join(5)
        listener.close()
    metrics = {line.split(":")[0]: line.split(":")[1] for line in lines}
    assert metrics["airflow.commpeak.send.messages"] == "3|c"
    assert metrics["airflow.commpeak.send.accepted"] == "3|c"
    assert metrics["airflow.commpeak.delivery.failed"] == "1|c"  # the sandbox's undelivered number
    assert metrics["airflow.commpeak.alerts.sent"] == "1|c"  # the failure alert
    assert not [line for line in lines if any(ch.isdigit() for ch in line.split(":")[0].split(".")[-1])]
