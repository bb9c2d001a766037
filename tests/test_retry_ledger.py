"""
A send task that fails mid-campaign and is retried by Airflow (``dag.test()``) resends nothing that
was accepted, on every supported Airflow: ``task_state_store`` (Airflow >= 3.3) or ``ledger_path``.
"""

from __future__ import annotations

from collections import Counter

import pytest

from helpers.airflow import TEST_DAGS, dag_bag, run_state, task_states

pytestmark = pytest.mark.sandbox


def _has_task_state_store() -> bool:
    try:
        from airflow.sdk.execution_time.context import TaskStateStoreAccessor  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("store", ["ledger_path", "task_state_store"])
def test_a_retry_after_an_api_error_mid_campaign_resends_nothing_accepted(
    airflow_db, commpeak_sandbox, tmp_path, store
):
    if store == "task_state_store" and not _has_task_state_store():
        pytest.skip("task_state_store needs Airflow >= 3.3; ledger_path is the store here")
    dag = dag_bag(TEST_DAGS).dags["commpeak_retry_campaign"]
    commpeak_sandbox.inject("403", after=4)  # 200 accepted, then the key is refused once
    conf = {"ledger_path": str(tmp_path / "ledger") if store == "ledger_path" else ""}
    dag_run = dag.test(run_conf=conf)
    assert run_state(dag_run) == "success"
    assert task_states(dag.dag_id, dag_run.run_id) == {"send": "success"}
    times = Counter(m["internal_id"] for m in commpeak_sandbox.accepted)
    assert len(times) == 500
    assert max(times.values()) == 1, "a retry resent an accepted message"
