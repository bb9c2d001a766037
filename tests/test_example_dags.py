"""Every example DAG parses cleanly and runs end to end with ``dag.test()`` against the sandbox."""

from __future__ import annotations

import socket
from collections import Counter

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from helpers.airflow import EXAMPLES, asset_event_extras, dag_bag, load_example, run_state, task_states, xcom_value

pytestmark = pytest.mark.sandbox


def test_every_example_parses_without_errors_or_connection_lookups(monkeypatch):
    """Parsing touches no connection and no network: no env connection, and sockets fail loudly."""
    monkeypatch.delenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("a DAG file opened a network connection at parse time")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    from airflow.providers.common.compat.sdk import BaseHook

    def no_lookup(*args, **kwargs):
        raise AssertionError("a DAG file looked up a connection at parse time")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(no_lookup))
    bag = dag_bag()
    assert bag.import_errors == {}
    expected = {
        "commpeak_send_and_wait",
        "commpeak_campaign",
        "commpeak_failure_alert",
        "commpeak_compliant_campaign",
        "commpeak_report_send",
        "commpeak_report_followup",
    }
    if AIRFLOW_V_3_1_PLUS:
        expected.add("commpeak_deadline_alert")
    assert set(bag.dag_ids) == expected
    assert len(list(EXAMPLES.glob("*.py"))) == 6


def assert_each_accepted_once(sandbox, expected: int) -> None:
    accepted = sandbox.accepted
    assert len(accepted) == expected
    assert Counter(m["internal_id"] for m in accepted).most_common(1)[0][1] == 1


def test_send_and_wait(airflow_db, commpeak_sandbox):
    dag = load_example("commpeak_send_and_wait")
    dag_run = dag.test()
    assert run_state(dag_run) == "success"
    assert task_states(dag.dag_id, dag_run.run_id) == {
        "send": "success",
        "wait_for_delivery": "success",
        "summarise": "success",
    }
    assert_each_accepted_once(commpeak_sandbox, 4)
    numbers = {m["recipient_phone"] for m in commpeak_sandbox.accepted}
    assert numbers == {"972524265292", "972545330008", "447700900123", "15550000001"}
    assert {m["sender"] for m in commpeak_sandbox.accepted} == {"GLOBAL", "SHOP"}
    assert all("{{" not in m["message_content"] for m in commpeak_sandbox.accepted)  # templated

    report = xcom_value(dag.dag_id, dag_run.run_id, "send")
    assert report["accepted"] == 4
    assert report["failed"] == 0
    assert report["message_uuids"] == [m["message_uuid"] for m in commpeak_sandbox.accepted]
    assert xcom_value(dag.dag_id, dag_run.run_id, "send", key="message_uuids") == report["message_uuids"]
    assert xcom_value(dag.dag_id, dag_run.run_id, "summarise") == {
        "sent": 4,
        "send_failed": 0,
        "delivered": 3,
        "delivery_failed": 1,
    }


def test_campaign_with_mapped_chunks(airflow_db, commpeak_sandbox, tmp_path):
    dag = load_example("commpeak_campaign")
    dag_run = dag.test(run_conf={"audience_size": 10, "chunk_size": 4, "workdir": f"file://{tmp_path}"})
    assert run_state(dag_run) == "success"
    states = task_states(dag.dag_id, dag_run.run_id)
    assert {k: v for k, v in states.items() if k.startswith("send_chunk")} == {
        "send_chunk[0]": "success",
        "send_chunk[1]": "success",
        "send_chunk[2]": "success",
    }
    assert_each_accepted_once(commpeak_sandbox, 10)
    assert xcom_value(dag.dag_id, dag_run.run_id, "summarise") == {
        "chunks": 3,
        "sent": 10,
        "delivered": 10,
        "delivery_failed": 0,
    }
    summaries = [xcom_value(dag.dag_id, dag_run.run_id, "send_chunk", map_index=i) for i in range(3)]
    assert [s["messages"] for s in summaries] == [4, 4, 2]
    assert all(s["report_path"].endswith(f"report-{i}.csv") for i, s in enumerate(summaries))
    assert len({m["internal_id"] for m in commpeak_sandbox.accepted}) == 10  # distinct ids across chunks


def test_failure_alert_texts_the_on_call_phone(airflow_db, commpeak_sandbox):
    dag = load_example("commpeak_failure_alert")
    dag_run = dag.test(run_conf={"fail": True})
    assert run_state(dag_run) == "failed"
    [alert] = commpeak_sandbox.accepted
    assert alert["recipient_phone"] == "972524265292"
    assert alert["sender"] == "ALERTS"
    assert alert["message_content"] == f"Airflow: commpeak_failure_alert failed, run {dag_run.run_id}"
    assert alert["internal_id"].startswith("alert-")


def test_failure_alert_stays_quiet_on_success(airflow_db, commpeak_sandbox):
    dag = load_example("commpeak_failure_alert")
    assert run_state(dag.test(run_conf={"fail": False})) == "success"
    assert commpeak_sandbox.accepted == []


def test_the_compliant_campaign_sends_each_allowed_row_once_and_reports_every_row(
    airflow_db, commpeak_sandbox, tmp_path, monkeypatch
):
    import csv

    monkeypatch.setenv("AIRFLOW__COMMPEAK__LEDGER_PATH", str(tmp_path / "ledger"))  # Airflow 2.11 needs one
    dag = load_example("commpeak_compliant_campaign")
    conf = {"workdir": f"file://{tmp_path}", "window_start": "00:00", "window_end": "23:59:59"}
    dag_run = dag.test(run_conf=conf)
    assert run_state(dag_run) == "success"
    accepted = commpeak_sandbox.accepted
    assert sorted(m["internal_id"] for m in accepted) == ["cust-0", "cust-1", "cust-2", "cust-4", "cust-5"]
    assert_each_accepted_once(commpeak_sandbox, 5)  # cust-3 replied STOP: SUPPRESSED
    assert {m["message_content"] for m in accepted} == {"Winter sale - 20% off everything...\nSTOP? reply STOP"}
    summary = xcom_value(dag.dag_id, dag_run.run_id, "send")
    assert (summary["accepted"], summary["failed"], summary["errors"]) == (5, 0, {"SUPPRESSED": 1})
    [delivery] = list(tmp_path.rglob("delivery.csv"))
    with delivery.open() as handle:
        rows = {row["internal_id"]: row for row in csv.DictReader(handle)}
    assert rows["cust-3"]["send_error"] == "SUPPRESSED"
    assert rows["cust-0"]["status"] == "delivered"


def test_the_report_asset_carries_the_counts_and_the_followup_reads_the_report(
    airflow_db, commpeak_sandbox, tmp_path, monkeypatch
):
    import csv
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the example puts its report
    send = load_example("commpeak_report_send")
    followup = load_example("commpeak_report_followup")
    [outlet] = send.get_task("send").outlets
    report = tmp_path / "commpeak-example-report-asset" / "report.csv"
    assert outlet.uri == report.as_uri()
    assert [getattr(a, "uri", None) for a in _schedule_assets(followup)] == [outlet.uri]

    if not AIRFLOW_V_3_1_PLUS:  # Airflow 2's dag.test() does not record the DAGs' datasets
        type(send).bulk_write_to_db([send, followup])
    dag_run = send.test()
    assert run_state(dag_run) == "success"
    assert_each_accepted_once(commpeak_sandbox, 2)
    counts = {"messages": 3, "accepted": 2, "failed": 1, "errors": {"INVALID_RECIPIENT": 1}}
    assert asset_event_extras(outlet.uri) == [counts]
    assert xcom_value(send.dag_id, dag_run.run_id, "send")["report_path"] == str(report)

    followup_run = followup.test()
    assert run_state(followup_run) == "success"
    with report.open() as handle:
        [refused] = [row["internal_id"] for row in csv.DictReader(handle) if row["error"]]
    assert refused not in {m["internal_id"] for m in commpeak_sandbox.accepted}
    assert xcom_value(followup.dag_id, followup_run.run_id, "read_report") == {
        "rows": 3,
        "outcomes": {"ACCEPTED": 2, "INVALID_RECIPIENT": 1},
        "not_accepted": {"INVALID_RECIPIENT": [refused]},
    }


def _schedule_assets(dag) -> list:
    """The assets (datasets on Airflow 2) a DAG is scheduled on."""
    condition = getattr(dag, "timetable", None)
    condition = getattr(condition, "asset_condition", None) or getattr(condition, "dataset_condition", None)
    return list(getattr(condition, "objects", None) or [])
