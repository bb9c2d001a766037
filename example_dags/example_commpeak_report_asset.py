"""
A campaign's report as an asset: one DAG sends and declares the report file as its outlet; another
DAG is scheduled on that asset and reads the report when it is written.

``commpeak_report_send`` writes its per-message report to a fixed file and lists it in ``outlets``.
The operator adds the send's counts to the asset event (``messages``, ``accepted``, ``failed``,
``errors``: no number, no text), so the UI's asset page shows them. ``commpeak_report_followup``
runs after each such event: it reads the report and lists, by error, the messages CommPeak did not
accept (their ``internal_id``; a report of a ``messages_path`` file also has each one's ``line``).

The report lives in the system's temporary folder here; in production point the asset at shared
storage (an ``s3://`` URL: the operator writes any ObjectStoragePath).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Asset, task

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator

REPORT_FILE = Path(tempfile.gettempdir()) / "commpeak-example-report-asset" / "report.csv"
#: The campaign's report, as an asset (a Dataset on Airflow 2.11).
CAMPAIGN_REPORT = Asset(REPORT_FILE.as_uri())

with DAG(
    dag_id="commpeak_report_send",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "commpeak"],
    doc_md=__doc__,
):
    SendSmsOperator(
        task_id="send",
        messages=[
            {"recipient_phone": "+44 7700 900123", "message_content": "Your order has shipped."},
            {"recipient_phone": "+1 555 000 0001", "message_content": "Your order has shipped."},
            {"recipient_phone": "+1 555 000 0009", "message_content": "Your order has shipped."},
        ],
        sender="SHOP",
        allowed_failures=0.5,  # the sandbox refuses +1 555 000 0009 (INVALID_RECIPIENT): the run goes on
        report_path=str(REPORT_FILE),
        outlets=[CAMPAIGN_REPORT],
    )

with DAG(
    dag_id="commpeak_report_followup",
    schedule=[CAMPAIGN_REPORT],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "commpeak"],
    doc_md=__doc__,
):

    @task
    def read_report(**context: Any) -> dict[str, Any]:
        """Count the report's rows by outcome and list the messages not accepted (ids only: no number in XCom)."""
        import csv

        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        for event in (e for group in events.values() for e in group):
            print(f"Triggered by the send's asset event: {event.extra}")
        with open(CAMPAIGN_REPORT.uri.removeprefix("file://"), newline="") as report:
            rows = list(csv.DictReader(report))
        outcomes = Counter(row["error"] or "ACCEPTED" for row in rows)
        again = {error: [row["internal_id"] for row in rows if row["error"] == error] for error in outcomes}
        again.pop("ACCEPTED", None)
        summary = {"rows": len(rows), "outcomes": dict(outcomes), "not_accepted": again}
        print(f"Report summary: {summary}")
        return summary

    read_report()
