"""Send-then-wait DAGs for the tests: poke and deferrable, delivered and never final."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

NUMBERS = {"delivered": ["972524265292", "972545330008"], "never_final": ["972524265292", "+1 555 000 0005"]}


def record_failure(context: dict[str, Any]) -> None:
    """Append the task's exception to the file named by COMMPEAK_TEST_FAILURES (the tests read it)."""
    target = os.environ.get("COMMPEAK_TEST_FAILURES")
    if target:
        with Path(target).open("a") as out:
            out.write(f"{type(context.get('exception')).__name__}: {context.get('exception')}\n")


MODES = {"poke": {"mode": "poke"}, "reschedule": {"mode": "reschedule"}, "deferrable": {"deferrable": True}}

for outcome, numbers in NUMBERS.items():
    for mode, mode_kwargs in MODES.items():
        dag_id = f"wait_{outcome}_{mode}"
        with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
            send = SendSmsOperator(
                task_id="send", recipients=numbers, message_content="hello {{ run_id }}", sender="TEST"
            )
            SmsStatusSensor(
                task_id="wait",
                message_uuids=send.output,
                poke_interval=1,
                timeout=4,
                on_failure_callback=record_failure,
                **{"deferrable": False, **mode_kwargs},
            )
        globals()[dag_id] = dag
