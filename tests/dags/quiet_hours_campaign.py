"""A campaign whose send window opens a few seconds from now (in the recipients' time): it defers, then sends."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator

with DAG(
    dag_id="commpeak_quiet_hours",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"window_start": "08:00", "window_end": "21:00"},
):
    SendSmsOperator(
        task_id="send",
        recipients=[f"97252{i:07d}" for i in range(40)],
        message_content="Your order shipped",
        sender="SHOP",
        batch_size=10,
        send_window=("{{ params.window_start }}", "{{ params.window_end }}"),
    )
