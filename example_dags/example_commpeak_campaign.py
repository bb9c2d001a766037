"""
A campaign split into chunks with dynamic task mapping: each chunk is a file, sent, then awaited.

``build_chunks`` stands in for exporting your audience (a table, a CRM): it writes one JSON Lines
file per chunk and returns one set of arguments per chunk. Each becomes a mapped ``send_chunk`` task
(its per-message report goes to a file, XCom keeps a summary) and a mapped ``wait_chunk`` sensor
that reads the uuids from that report. A failed chunk retries alone and, on Airflow >= 3.3, sends
only what CommPeak never accepted. Several chunks in flight share the API's rate limit: each task
paces itself to what the API accepts (docs/scaling.md).

Files go to ``params.workdir`` (default: the system's temporary folder). With workers on several
machines, point it at shared storage, e.g. an ``s3://`` URL (any ObjectStoragePath works).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

with DAG(
    dag_id="commpeak_campaign",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"audience_size": 10, "chunk_size": 4, "workdir": ""},
    tags=["example", "commpeak"],
    doc_md=__doc__,
):

    @task
    def build_chunks(params: dict[str, Any] | None = None, run_id: str | None = None) -> list[dict[str, str]]:
        """Write the audience (here: made-up numbers) as chunk files; one argument set per chunk."""
        import json
        import re
        import tempfile

        from airflow.providers.common.compat.sdk import ObjectStoragePath

        params = params or {}
        size, chunk_size = int(params.get("audience_size", 10)), int(params.get("chunk_size", 4))
        workdir = params.get("workdir") or f"file://{tempfile.gettempdir()}"
        folder = ObjectStoragePath(workdir) / f"commpeak-campaign-{re.sub(r'[^A-Za-z0-9_.-]', '_', run_id or 'run')}"
        folder.mkdir(parents=True, exist_ok=True)
        chunks = []
        for index, start in enumerate(range(0, size, chunk_size)):
            path = folder / f"chunk-{index}.jsonl"
            with path.open("w") as out:
                for i in range(start, min(start + chunk_size, size)):
                    row = {"recipient_phone": f"+44 7700 9{i:05d}", "message_content": f"Hello customer {i}, 20% off!"}
                    out.write(json.dumps(row) + "\n")
            chunks.append({"messages_path": str(path), "report_path": str(folder / f"report-{index}.csv")})
        return chunks

    sent = SendSmsOperator.partial(
        task_id="send_chunk", sender="CAMPAIGN", retries=2, retry_delay=timedelta(seconds=30)
    ).expand_kwargs(build_chunks())

    delivered = SmsStatusSensor.partial(task_id="wait_chunk", poke_interval=2, timeout=600, deferrable=True).expand(
        message_uuids=sent.output
    )

    @task
    def summarise(reports: list[dict[str, Any]], deliveries: list[dict[str, Any]]) -> dict[str, int]:
        """Totals over every chunk (counts only: no number or text is in XCom)."""
        summary = {
            "chunks": len(list(reports)),
            "sent": sum(r["accepted"] for r in reports),
            "delivered": sum(d["succeeded"] for d in deliveries),
            "delivery_failed": sum(d["failed"] for d in deliveries),
        }
        print(f"Campaign summary: {summary}")
        return summary

    summarise(sent.output, delivered.output)
