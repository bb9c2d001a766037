"""
A marketing campaign with every safeguard on: quiet hours in each recipient's time, an opt-out
footer, a suppression list, destination countries, a spend cap and smart encoding.

``build_audience`` stands in for exporting your audience and your opt-out list (a CRM, a table):
it writes both as files and returns their paths. ``send`` refuses, before anything is sent, a
campaign to another country or over budget; leaves out opted-out numbers (``SUPPRESSED``);
appends the footer; sends now to whoever is inside 08:00-21:00 in their own time zone, defers until
the window opens for the others, and resumes (the send ledger makes sure nobody gets it twice).
``wait`` writes the delivery report, one row per audience row.

The provider enforces what you configure; it is not legal advice. Check the rules of every country
you send to (quiet hours, opt-out wording, consent) with whoever advises you on them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

with DAG(
    dag_id="commpeak_compliant_campaign",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"workdir": "", "window_start": "08:00", "window_end": "21:00"},
    tags=["example", "commpeak"],
    doc_md=__doc__,
):

    @task
    def build_audience(params: dict[str, Any] | None = None, run_id: str | None = None) -> dict[str, str]:
        """Write the audience and the opt-out list (here: made-up numbers) and return their paths."""
        import csv
        import re
        import tempfile

        from airflow.providers.common.compat.sdk import ObjectStoragePath

        params = params or {}
        workdir = params.get("workdir") or f"file://{tempfile.gettempdir()}"
        folder = ObjectStoragePath(workdir) / f"commpeak-compliant-{re.sub(r'[^A-Za-z0-9_.-]', '_', run_id or 'run')}"
        folder.mkdir(parents=True, exist_ok=True)
        audience, optouts = folder / "audience.csv", folder / "optouts.txt"
        with audience.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["internal_id", "recipient_phone", "message_content"])
            for i in range(6):
                writer.writerow([f"cust-{i}", f"052-555-{1000 + i}", "Winter sale \u2014 20% off everything\u2026"])
        with optouts.open("w") as handle:
            handle.write("# numbers that replied STOP\n052-555-1003\n")
        return {"audience": str(audience), "optouts": str(optouts), "delivery": str(folder / "delivery.csv")}

    paths = build_audience()
    send = SendSmsOperator(
        task_id="send",
        messages_path=paths["audience"],
        suppression_path=paths["optouts"],
        sender="SHOP",
        default_region="IL",
        allowed_countries=["IL"],
        max_total_segments=1_000,
        prices={"IL": 0.012},
        max_cost=10,
        opt_out_text="STOP? reply STOP",
        smart_encoding=True,
        send_window=("{{ params.window_start }}", "{{ params.window_end }}"),
        valid_for=timedelta(hours=24),
        retries=2,
        retry_delay=timedelta(seconds=30),
    )
    SmsStatusSensor(
        task_id="wait",
        message_uuids=send.output,
        status_report_path=paths["delivery"],
        poke_interval=30,
        timeout=3600,
        deferrable=True,
    )
