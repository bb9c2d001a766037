"""
An SMS when a DAG run misses its deadline: ``CommPeakSmsNotifier`` as a Deadline Alert (Airflow >= 3.1).

The run must finish within 10 seconds of being queued; ``slow_step`` takes 30, so the scheduler marks
the deadline missed and the triggerer sends ``Airflow: commpeak_deadline_alert missed its deadline,
run manual__...``. On Airflow older than 3.1 this file defines no DAG (Deadline Alerts do not exist).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

if AIRFLOW_V_3_1_PLUS:
    from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference, task

    from airflow_provider_commpeak.notifications.commpeak import CommPeakSmsNotifier

    with DAG(
        dag_id="commpeak_deadline_alert",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        deadline=DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(seconds=10),
            callback=AsyncCallback(
                CommPeakSmsNotifier,
                kwargs={"recipients": ["+972 52-426-5292"], "sender": "ALERTS", "max_segments": 1},
            ),
        ),
        tags=["example", "commpeak"],
        doc_md=__doc__,
    ):

        @task
        def slow_step() -> None:
            """Takes longer than the deadline allows."""
            time.sleep(30)

        slow_step()
