"""The README's DAG, copied from the README as it stands, runs end to end in ``dag.test()``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.airflow import dag_bag, run_state, xcom_value
from helpers.readme import readme_dag

pytestmark = pytest.mark.sandbox


def test_the_readme_dag_runs_and_texts_each_person_once(airflow_db, monkeypatch):
    from airflow_provider_commpeak.sandbox import CommPeakSandbox

    copied = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "readme_dag.py"  # written by conftest
    assert copied.read_text() == readme_dag()
    with CommPeakSandbox(delivery_delay=0) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sandbox.connection_json)
        bag = dag_bag(copied)
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags["otp_fallback"]
        dag_run = dag.test()
        accepted = sandbox.accepted
    assert run_state(dag_run) == "success"
    numbers = sorted(m["recipient_phone"] for m in accepted)
    assert numbers == sorted(set(numbers)), "the README's example texts someone twice"
    assert len(numbers) == 3
    report = xcom_value(dag.dag_id, dag_run.run_id, "send")
    assert [r["error"] for r in report["results"].values()] == [None, None, None]  # no DUPLICATE either
    assert {m["message_content"] for m in accepted} == {"Your ACME code is 4711"}
    delivery = xcom_value(dag.dag_id, dag_run.run_id, "wait_for_delivery")
    assert (delivery["succeeded"], delivery["failed"]) == (3, 0)
