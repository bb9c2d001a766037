"""
``dag.test()`` (``airflow dags test``) runs a campaign-sized send: many batches, four in flight, the
ledger's store calls going through Airflow's one-request-at-a-time in-process supervisor channel.
"""

from __future__ import annotations

from collections import Counter

import pytest

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
