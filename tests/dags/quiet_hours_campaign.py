"""A campaign whose send window opens a few seconds from now (in the recipients' time): it defers, then sends."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator

with DAG(dag_id="commpeak_quiet_hours", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    SendSmsOperator(
        task_id="send",
        recipients=[f"97252{i:07d}" for i in range(40)],
        message_content="Your order shipped",
        sender="SHOP",
        batch_size=10,
        send_window=(
            os.environ.get("COMMPEAK_TEST_WINDOW_START", "08:00"),
            os.environ.get("COMMPEAK_TEST_WINDOW_END", "21:00"),
        ),
    )
