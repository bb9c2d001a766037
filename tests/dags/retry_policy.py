"""Sends with retries: bad input and a wrong key must fail at once; a rate-limit give-up retries."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator

with DAG(dag_id="commpeak_retry_policy", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    retrying = {"retries": 2, "retry_delay": timedelta(seconds=0)}
    SendSmsOperator(task_id="bad_input", recipients=["12"], message_content="x", sender="S", **retrying)
    SendSmsOperator(
        task_id="wrong_key",
        recipients=["972524265292"],
        message_content="x",
        sender="S",
        commpeak_conn_id="commpeak_wrong_key",
        **retrying,
    )
    SendSmsOperator(
        task_id="gives_up",
        recipients=["972524265292"],
        message_content="x",
        sender="S",
        rate_limit_timeout=1,
        **retrying,
    )
