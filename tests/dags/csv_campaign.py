"""A CSV campaign as a newcomer writes it from the README: messages_path alone, then wait on send.output."""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

with DAG(dag_id="commpeak_csv_campaign", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    send = SendSmsOperator(
        task_id="send",
        messages_path=os.environ.get("COMMPEAK_TEST_AUDIENCE", "/nonexistent/audience.csv"),
        sender="SHOP",
        default_region="IL",
    )
    SmsStatusSensor(
        task_id="wait",
        message_uuids=send.output,
        status_report_path=os.environ.get("COMMPEAK_TEST_DELIVERY", "/nonexistent/delivery.csv"),
        poke_interval=0.2,
        timeout=60,
    )
