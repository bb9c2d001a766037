"""A campaign-sized send run by ``dag.test()``: many batches, four in flight, the task state store under them."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator

with DAG(
    dag_id="commpeak_dags_test_campaign",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"size": 250},
):

    @task
    def audience(params: dict | None = None) -> list[str]:
        assert params is not None
        return [f"97250{i:07d}" for i in range(int(params["size"]))]

    SendSmsOperator(
        task_id="send",
        recipients=audience(),
        message_content="Campaign {{ run_id }}",
        sender="SHOP",
        batch_size=100,
        max_concurrency=4,
    )
