"""
Text the on-call phone when a DAG fails: ``CommPeakSmsNotifier`` as ``on_failure_callback``.

No text is given, so the SMS says what happened (``Airflow: commpeak_failure_alert failed, run
manual__...``), trimmed to one SMS segment. A callback firing twice for one failure sends once.
Add ``min_interval=900`` to keep a flapping DAG from texting more than once every 15 minutes.

Trigger it with ``{"fail": true}`` to see the alert (``airflow dags test commpeak_failure_alert
-c '{"fail": true}'``); against the sandbox the SMS shows up in ``GET /_sandbox/messages``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_commpeak.notifications.commpeak import CommPeakSmsNotifier

with DAG(
    dag_id="commpeak_failure_alert",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"fail": False},
    on_failure_callback=CommPeakSmsNotifier(
        recipients=["+972 52-426-5292"],
        sender="ALERTS",
        max_segments=1,
    ),
    tags=["example", "commpeak"],
    doc_md=__doc__,
):

    @task
    def nightly_load(params: dict[str, Any] | None = None) -> str:
        """Stands in for real work; fails when the run's conf says so."""
        if (params or {}).get("fail"):
            raise RuntimeError("the nightly load failed (as asked by the run's conf)")
        return "loaded"

    nightly_load()
