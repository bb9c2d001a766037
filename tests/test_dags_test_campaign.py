"""
``dag.test()`` (``airflow dags test``) runs a campaign-sized send: many batches, four in flight, the
ledger's store calls going through Airflow's one-request-at-a-time in-process supervisor channel.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from datetime import UTC

import pytest

from helpers import window_in_israel
from helpers.airflow import TEST_DAGS, dag_bag, run_state, xcom_value

pytestmark = pytest.mark.sandbox


def _dag():
    bag = dag_bag(TEST_DAGS)
    assert not bag.import_errors, bag.import_errors
    return bag.dags["commpeak_dags_test_campaign"]


@pytest.mark.parametrize("ledger", ["task_state_store", "ledger_path"])
def test_ten_thousand_messages_through_dag_test_each_accepted_once(
    airflow_db, commpeak_sandbox, tmp_path, ledger, monkeypatch
):
    if ledger == "ledger_path":
        monkeypatch.setenv("AIRFLOW__COMMPEAK__LEDGER_PATH", str(tmp_path / "ledger"))
    dag = _dag()
    dag_run = dag.test(run_conf={"size": 10_000})
    assert run_state(dag_run) == "success"
    times = Counter(m["internal_id"] for m in commpeak_sandbox.accepted)
    assert len(times) == 10_000
    assert max(times.values()) == 1
    report = xcom_value(dag.dag_id, dag_run.run_id, "send")
    assert (report["accepted"], report["failed"]) == (10_000, 0)
    if ledger == "ledger_path":
        [log] = (tmp_path / "ledger" / dag.dag_id).rglob("ledger.log")
        assert len(log.read_text().splitlines()) > 200  # written ahead and settled, each of 100 batches


def test_a_csv_campaign_with_the_operators_defaults_runs_and_every_row_is_traceable(
    airflow_db, commpeak_sandbox, tmp_path, monkeypatch
):
    """messages_path alone; the sensor takes send.output; the delivery report joins rows and statuses."""
    import csv

    audience = tmp_path / "audience.csv"
    rows = [("r1", "052-426-5292", "Hi Dana"), ("r2", "+972 54-533-0008", "Hi Avi"), ("r3", "972524265292", "Hi Dana")]
    with audience.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["internal_id", "recipient_phone", "message_content"])
        writer.writerows(rows)
    monkeypatch.setenv("COMMPEAK_TEST_AUDIENCE", str(audience))
    monkeypatch.setenv("COMMPEAK_TEST_DELIVERY", str(tmp_path / "delivery.csv"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the report's default place (TMPDIR is read once)
    bag = dag_bag(TEST_DAGS / "csv_campaign.py")
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["commpeak_csv_campaign"]
    dag_run = dag.test()
    assert run_state(dag_run) == "success"
    summary = xcom_value(dag.dag_id, dag_run.run_id, "send")
    assert (summary["messages"], summary["accepted"], summary["failed"]) == (3, 2, 0)
    assert summary["errors"] == {"DUPLICATE": 1}  # r3 is r1's number and text: sent once
    assert summary["report_path"].startswith(str(tmp_path / "commpeak-reports" / dag.dag_id))
    assert sorted(m["internal_id"] for m in commpeak_sandbox.accepted) == ["r1", "r2"]
    with open(tmp_path / "delivery.csv") as handle:
        delivery = list(csv.DictReader(handle))
    delivery.sort(key=lambda r: int(r["line"]))  # a report file is written as messages settle
    assert [(r["internal_id"], r["line"], r["status"], r["send_error"]) for r in delivery] == [
        ("r1", "2", "delivered", ""),
        ("r2", "3", "delivered", ""),
        ("r3", "4", "", "DUPLICATE"),
    ]


def test_a_campaign_whose_window_opens_soon_defers_resumes_on_time_and_sends_each_once(
    airflow_db, commpeak_sandbox, tmp_path, monkeypatch
):
    """In Israel's time (the recipients'), the window opens 8 s from now: the task defers, then sends."""
    from datetime import datetime

    opens, closes = window_in_israel(lead=8)
    monkeypatch.setenv("AIRFLOW__COMMPEAK__LEDGER_PATH", str(tmp_path / "ledger"))
    bag = dag_bag(TEST_DAGS / "quiet_hours_campaign.py")
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["commpeak_quiet_hours"]
    # the sandbox stamps acceptances with this process's monotonic clock
    opens_monotonic = time.monotonic() + (opens - datetime.now(UTC)).total_seconds()
    window = {
        "window_start": opens.time().isoformat(timespec="seconds"),
        "window_end": closes.time().isoformat("seconds"),
    }
    dag_run = dag.test(run_conf=window)
    assert run_state(dag_run) == "success"
    times = Counter(m["internal_id"] for m in commpeak_sandbox.accepted)
    assert len(times) == 40
    assert max(times.values()) == 1
    first = min(m["accepted_at"] for m in commpeak_sandbox.accepted)
    assert first >= opens_monotonic - 0.05, f"sent {opens_monotonic - first:.1f} s before the window opened"
    report = xcom_value(dag.dag_id, dag_run.run_id, "send")
    assert (report["accepted"], report["failed"]) == (40, 0)
