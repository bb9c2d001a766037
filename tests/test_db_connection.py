"""A connection stored in the metadata database (as the UI stores it), under ``dag.test()``.

Airflow 3's ``dags test`` cannot read such a connection from a DAG callback or an inline trigger
on its own (see ``_engine/lookup.py``); the provider reads it anyway. Airflow 2 reads it natively.
"""

from __future__ import annotations

import pytest

from airflow_provider_commpeak.sandbox import CommPeakSandbox
from helpers.airflow import TEST_DAGS, dag_bag, load_example, run_state, task_states

pytestmark = pytest.mark.sandbox


@pytest.fixture
def db_connection(airflow_db, monkeypatch):
    """A sandbox reachable only through a ``commpeak_default`` row in the metadata database."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    monkeypatch.delenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", raising=False)
    with CommPeakSandbox(delivery_delay=0.2) as sandbox:
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == "commpeak_default").delete()
            session.add(
                Connection(
                    conn_id="commpeak_default",
                    conn_type="commpeak",
                    password=sandbox.api_key,
                    host=sandbox.url,
                )
            )
        try:
            yield sandbox
        finally:
            with create_session() as session:
                session.query(Connection).filter(Connection.conn_id == "commpeak_default").delete()


def test_operator_and_deferrable_sensor(db_connection):
    dag = load_example("commpeak_send_and_wait")
    dag_run = dag.test()
    assert run_state(dag_run) == "success", task_states(dag.dag_id, dag_run.run_id)
    assert len(db_connection.accepted) == 4


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_sensor_in_poke_and_deferrable_mode(db_connection, mode):
    dag = dag_bag(TEST_DAGS / "wait_variants.py").dags[f"wait_delivered_{mode}"]
    dag_run = dag.test()
    assert run_state(dag_run) == "success", task_states(dag.dag_id, dag_run.run_id)


def test_failure_notifier(db_connection):
    dag = load_example("commpeak_failure_alert")
    assert run_state(dag.test(run_conf={"fail": True})) == "failed"
    assert len(db_connection.accepted) == 1
