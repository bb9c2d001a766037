from __future__ import annotations

import asyncio

import pytest

from airflow_provider_commpeak.exceptions import CommPeakSendError, CommPeakValidationError
from airflow_provider_commpeak.notifications.commpeak import (
    CommPeakSmsNotifier,
    send_commpeak_sms_notification,
)
from airflow_provider_commpeak.sandbox import REFUSED_NUMBER
from helpers.airflow import TEST_DAGS, dag_bag

pytestmark = pytest.mark.sandbox


def notifier(**kwargs) -> CommPeakSmsNotifier:
    options = {
        "recipients": ["+972 52-426-5292"],
        "message_content": "{{ dag.dag_id }} failed",
        "sender": "ALERTS",
    }
    options.update(kwargs)
    return CommPeakSmsNotifier(**options)


def test_alias_and_keyword_only():
    assert send_commpeak_sms_notification is CommPeakSmsNotifier
    with pytest.raises(TypeError):
        CommPeakSmsNotifier(["972524265292"], "x", "S")  # type: ignore[misc]
    assert set(CommPeakSmsNotifier.template_fields) == {
        "recipients",
        "message_content",
        "sender",
        "commpeak_conn_id",
        "default_region",
    }


def test_renders_from_a_real_task_context_and_sends(airflow_db, commpeak_sandbox):
    """The notifier as an on_success_callback of a real task run by dag.test()."""
    dag = dag_bag(TEST_DAGS / "notify_on_success.py").dags["notify_on_success"]
    dag_run = dag.test()
    [sms] = commpeak_sandbox.accepted
    assert sms["message_content"] == f"work of notify_on_success done ({dag_run.run_id})"
    assert (sms["recipient_phone"], sms["sender"]) == ("972524265292", "ALERTS")


def test_notify_sends_through_the_sandbox(commpeak_sandbox):
    notifier(message_content="plain text").notify({})
    assert [m["message_content"] for m in commpeak_sandbox.accepted] == ["plain text"]


def test_async_notify_sends_through_the_sandbox(commpeak_sandbox):
    asyncio.run(notifier(message_content="from the triggerer").async_notify({}))
    assert [m["message_content"] for m in commpeak_sandbox.accepted] == ["from the triggerer"]


def test_a_message_not_accepted_raises_loudly(commpeak_sandbox, capsys, caplog):
    with pytest.raises(CommPeakSendError, match="1 INVALID_RECIPIENT"):
        notifier(recipients=[REFUSED_NUMBER], message_content="x").notify({})
    assert "SMS notification: 1 of 1 not accepted" in capsys.readouterr().out + caplog.text


def test_bad_input_raises_and_sends_nothing(commpeak_sandbox):
    with pytest.raises(CommPeakValidationError):
        notifier(recipients=["12"], message_content="x").notify({})
    with pytest.raises(CommPeakValidationError, match="recipients must be a list"):
        notifier(recipients="972524265292", message_content="x").notify({})
    assert commpeak_sandbox.requests == {}


def test_a_refused_key_is_raised(commpeak_sandbox):
    commpeak_sandbox.inject("403")
    from airflow_provider_commpeak.exceptions import CommPeakAuthError

    with pytest.raises(CommPeakAuthError):
        notifier(message_content="x").notify({})
