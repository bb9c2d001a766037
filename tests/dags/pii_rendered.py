"""Three sends whose rendered fields Airflow stores: a list of messages, recipients, and one that fails validation."""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator

NUMBERS = ["972524265292", "447400123456", "12025550123"]
TEXTS = ["Secret OTP 918273", "Your parcel 55AB-77 is here", "Balance 1234.56 EUR"]
BAD_NUMBER = "97254533"

with DAG(dag_id="pii_rendered", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):

    @task
    def audience() -> list[dict[str, str]]:
        return [{"recipient_phone": n, "message_content": t} for n, t in zip(NUMBERS, TEXTS, strict=True)]

    SendSmsOperator(task_id="send_messages", messages=audience(), sender="GLOBAL")
    SendSmsOperator(
        task_id="send_recipients",
        recipients=NUMBERS,
        message_content=TEXTS[0] + " {{ ds }}",
        sender="GLOBAL",
    )
    SendSmsOperator(
        task_id="send_invalid",
        messages=[
            {"recipient_phone": BAD_NUMBER, "message_content": TEXTS[1]},
            *[{"recipient_phone": NUMBERS[2], "message_content": TEXTS[2]}],
        ],
        sender="GLOBAL",
    )
