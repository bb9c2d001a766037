"""
A campaign split into chunks with dynamic task mapping: each chunk is sent, then awaited.

``build_chunks`` stands in for reading your audience (a table, a file); each chunk becomes one
mapped ``send_chunk`` task and one mapped ``wait_chunk`` sensor, so a failed chunk retries alone
and never resends what another chunk sent. Runs as is against the sandbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

CHUNK_SIZE = 4

with DAG(
    dag_id="commpeak_campaign",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"audience_size": 10},
    tags=["example", "commpeak"],
    doc_md=__doc__,
):

    @task
    def build_chunks(params: dict[str, Any] | None = None) -> list[list[dict[str, str]]]:
        """The audience as chunks of messages (here: made-up numbers)."""
        size = int((params or {}).get("audience_size", 10))
        messages = [
            {
                "recipient_phone": f"+44 7700 9{i:05d}",
                "message_content": f"Hello customer {i}, 20% off today!",
            }
            for i in range(size)
        ]
        return [messages[i : i + CHUNK_SIZE] for i in range(0, len(messages), CHUNK_SIZE)]

    sent = SendSmsOperator.partial(task_id="send_chunk", sender="CAMPAIGN", batch_size=100).expand(
        messages=build_chunks()
    )

    delivered = SmsStatusSensor.partial(
        task_id="wait_chunk", poke_interval=1, timeout=300, mode="poke"
    ).expand(message_uuids=sent.output)

    @task
    def summarise(reports: list[dict[str, Any]], deliveries: list[dict[str, Any]]) -> dict[str, int]:
        """Totals over every chunk."""
        summary = {
            "chunks": len(list(reports)),
            "sent": sum(r["accepted"] for r in reports),
            "delivered": sum(d["succeeded"] for d in deliveries),
            "delivery_failed": sum(d["failed"] for d in deliveries),
        }
        print(f"Campaign summary: {summary}")
        return summary

    summarise(sent.output, delivered.output)
