"""DAG parsing stays cheap: no connection lookup, no network, with a hundred CommPeak tasks."""

from __future__ import annotations

import socket
import textwrap

from helpers.airflow import dag_bag

HUNDRED_TASKS = textwrap.dedent(
    """
    from datetime import datetime

    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_commpeak.notifications.commpeak import CommPeakSmsNotifier
    from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
    from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

    with DAG(dag_id="hundred_sends", schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             on_failure_callback=CommPeakSmsNotifier(recipients=["972524265292"], message_content="x", sender="S")):
        for i in range(100):
            send = SendSmsOperator(task_id=f"send_{i}", recipients=["972524265292"], message_content="hi {{ ds }}",
                                   sender="S", commpeak_conn_id="{{ var.value.get('cp_conn', 'commpeak_default') }}")
            send >> SmsStatusSensor(task_id=f"wait_{i}", message_uuids=send.output, deferrable=True)
    """
)


def test_a_hundred_tasks_parse_without_network_or_connection_lookups(tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", raising=False)
    calls: list[str] = []

    def no_network(self, *args, **kwargs):
        calls.append("socket.connect")
        raise AssertionError("a network connection at parse time")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    from airflow.providers.common.compat.sdk import BaseHook

    def no_lookup(cls, *args, **kwargs):
        calls.append("get_connection")
        raise AssertionError("a connection lookup at parse time")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(no_lookup))
    (tmp_path / "hundred.py").write_text(HUNDRED_TASKS)
    bag = dag_bag(tmp_path)
    assert bag.import_errors == {}
    assert len(bag.dags["hundred_sends"].tasks) == 200
    assert calls == []
