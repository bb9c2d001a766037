"""Which errors spend the task's retries: bad input and a refused key never do; a rate-limit give-up does."""

from __future__ import annotations

import json

import pytest

from airflow_provider_commpeak.exceptions import CommPeakAuthError, CommPeakKeyRefusedError, CommPeakValidationError
from helpers.airflow import TEST_DAGS, dag_bag

pytestmark = pytest.mark.sandbox


def tries(dag_id: str, run_id: str) -> dict[str, tuple[str, int]]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        return {ti.task_id: (str(getattr(ti.state, "value", ti.state)), ti.try_number) for ti in rows}


def test_bad_input_fails_at_once_and_a_rate_limit_give_up_retries(airflow_db, monkeypatch):
    from airflow_provider_commpeak.sandbox import CommPeakSandbox

    with CommPeakSandbox(rate_limit=100) as sandbox:
        sandbox.state.update_settings({"drain": 3600})  # another client holds the key: RATE_LIMIT for everything
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sandbox.connection_json)
        wrong = {**json.loads(sandbox.connection_json), "password": "not-the-key"}
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_WRONG_KEY", json.dumps(wrong))
        dag = dag_bag(TEST_DAGS / "retry_policy.py").dags["commpeak_retry_policy"]
        dag_run = dag.test()
    states = tries(dag.dag_id, dag_run.run_id)
    assert states["bad_input"] == ("failed", 1)  # no retry spent on input that cannot change
    assert states["wrong_key"] == ("failed", 1)  # nor on a key refused from the first request
    assert states["gives_up"] == ("failed", 3)  # a give-up is worth retrying: 1 + 2 retries


def test_the_errors_that_skip_retries_are_airflows_fail_exception():
    from airflow.providers.common.compat.sdk import AirflowFailException

    assert issubclass(CommPeakValidationError, AirflowFailException)
    assert issubclass(CommPeakKeyRefusedError, AirflowFailException)
    assert issubclass(CommPeakKeyRefusedError, CommPeakAuthError)  # caught as before
    assert not issubclass(CommPeakAuthError, AirflowFailException)  # refused mid-send: worth a retry
