"""A one-task DAG whose task texts on success: the notifier rendered from a real task context."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_commpeak.notifications.commpeak import CommPeakSmsNotifier

with DAG(dag_id="notify_on_success", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task(
        on_success_callback=CommPeakSmsNotifier(
            recipients=["+972 52-426-5292"],
            message_content="{{ ti.task_id }} of {{ dag.dag_id }} done ({{ run_id }})",
            sender="ALERTS",
        )
    )
    def work() -> int:
        return 1

    work()
