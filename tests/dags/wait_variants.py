"""Send-then-wait DAGs for the tests: poke and deferrable, delivered and never final."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

NUMBERS = {"delivered": ["972524265292", "972545330008"], "never_final": ["972524265292", "+1 555 000 0005"]}

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
                **{"deferrable": False, **mode_kwargs},
            )
        globals()[dag_id] = dag
