"""A send task that may fail mid-campaign and is retried by Airflow: the ledger keeps the retry from resending."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator

with DAG(
    dag_id="commpeak_retry_campaign",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"ledger_path": ""},
):
    SendSmsOperator(
        task_id="send",
        recipients=[f"97250{i:07d}" for i in range(500)],
        message_content="Campaign {{ run_id }}",
        sender="SHOP",
        batch_size=50,
        max_concurrency=1,
        ledger_path="{{ params.ledger_path }}",
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
