"""
Send a batch of SMS, wait for the delivery receipts, summarise.

Runs as is against the sandbox (``make demo``): the last number is the sandbox's test number for
``undelivered``, and the sensor allows one failure. Against the real API, set the
``commpeak_default`` connection, use real numbers and raise ``poke_interval``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

with DAG(
    dag_id="commpeak_send_and_wait",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"brand": "ACME"},
    tags=["example", "commpeak"],
    doc_md=__doc__,
):
    send = SendSmsOperator(
        task_id="send",
        messages=[
            {
                "recipient_phone": "+972 52-426-5292",
                "message_content": "Your {{ params.brand }} code is 4711",
            },
            {"recipient_phone": "972545330008", "message_content": "Your {{ params.brand }} code is 1234"},
            {"recipient_phone": "+44 7700 900123", "message_content": "Order shipped", "sender": "SHOP"},
            {"recipient_phone": "+1 555 000 0001", "message_content": "This one is never delivered"},
        ],
        sender="GLOBAL",
    )

    # Deferrable: while receipts are pending the sensor waits in the triggerer, not in a worker slot.
    wait = SmsStatusSensor(
        task_id="wait_for_delivery",
        message_uuids=send.output["message_uuids"],
        allowed_failures=1,
        poke_interval=1,
        timeout=300,
        deferrable=True,
    )

    @task
    def summarise(report: dict[str, Any], delivery: dict[str, Any]) -> dict[str, int]:
        """Count what was sent and delivered (no numbers or texts: the report holds none)."""
        summary = {
            "sent": report["accepted"],
            "send_failed": report["failed"],
            "delivered": delivery["succeeded"],
            "delivery_failed": delivery["failed"],
        }
        print(f"SMS summary: {summary}")
        return summary

    summarise(send.output, wait.output)
