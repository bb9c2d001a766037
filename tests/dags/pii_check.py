"""Send, wait (a delivery failure fails the wait), and text on failure: for the secrets and PII test."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_commpeak.notifications.commpeak import CommPeakSmsNotifier
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

NUMBERS = ["972524265292", "+44 7700 900123", "+1 555 000 0001"]
TEXTS = ["Secret OTP 918273", "Your parcel 55AB-77 is here", "Balance 1234.56 EUR"]
ALERT_NUMBER = "+972 54-533-0008"
ALERT_TEXT = "Pager: pii_check failed badly"

with DAG(
    dag_id="pii_check",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={
        "on_failure_callback": CommPeakSmsNotifier(
            recipients=[ALERT_NUMBER], message_content=ALERT_TEXT, sender="ALERTS"
        )
    },
):
    send = SendSmsOperator(
        task_id="send",
        messages=[{"recipient_phone": n, "message_content": t} for n, t in zip(NUMBERS, TEXTS, strict=True)],
        sender="GLOBAL",
    )
    SmsStatusSensor(task_id="wait", message_uuids=send.output, poke_interval=0.3, timeout=30)
