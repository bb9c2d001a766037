"""The API key, full phone numbers and message texts never reach logs, errors, XCom or trigger kwargs."""

from __future__ import annotations

import importlib.util
import json

import pytest

from airflow_provider_commpeak._input.phones import normalize_phone
from airflow_provider_commpeak.sandbox import CommPeakSandbox
from helpers.airflow import TEST_DAGS, dag_bag, run_state, task_states, xcom_value

pytestmark = pytest.mark.sandbox

API_KEY = "sk-live-7c1e9f3a5b2d"


def _dag_module():
    spec = importlib.util.spec_from_file_location("pii_check_constants", TEST_DAGS / "pii_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_whole_dag_run_leaks_nothing(airflow_db, monkeypatch, capsys, caplog):
    """Send, wait (fails on an undelivered number), notify on failure; then grep everything captured."""
    pii = _dag_module()
    with CommPeakSandbox(api_key=API_KEY, delivery_delay=0.2) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sandbox.connection_json)
        dag = dag_bag(TEST_DAGS / "pii_check.py").dags["pii_check"]
        dag_run = dag.test()
        accepted = sandbox.accepted

    assert run_state(dag_run) == "failed"
    assert task_states(dag.dag_id, dag_run.run_id) == {"send": "success", "wait": "failed"}
    assert {m["message_content"] for m in accepted} == {*pii.TEXTS, pii.ALERT_TEXT}  # the alert went out

    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    xcom_text = json.dumps(xcom_value(dag.dag_id, dag_run.run_id, "send"))
    assert "failed delivery" in logs  # the capture saw the run's log lines
    numbers = [normalize_phone(n) for n in [*pii.NUMBERS, pii.ALERT_NUMBER]]
    for haystack, where in ((logs, "logs"), (xcom_text, "XCom")):
        assert API_KEY not in haystack, f"API key in {where}"
        for number in numbers:
            assert number not in haystack, f"full number {number[:4]}... in {where}"
        for text in [*pii.TEXTS, pii.ALERT_TEXT]:
            assert text not in haystack, f"a message text in {where}"


def test_rendered_fields_and_trigger_kwargs_hold_no_key(monkeypatch):
    from airflow_provider_commpeak.triggers.commpeak import SmsStatusTrigger

    with CommPeakSandbox(api_key=API_KEY) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sandbox.connection_json)
        trigger = SmsStatusTrigger(
            statuses={"u": "sent"},
            commpeak_conn_id="commpeak_default",
            success_statuses=["delivered"],
            failure_statuses=["rejected"],
            allowed_failures=0,
            poll_interval=1,
            end_time=None,
        )
        assert API_KEY not in json.dumps(trigger.serialize())


def test_tls_verification_is_on(commpeak_conn):
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

    verify = CommPeakHook().get_conn().verify
    assert verify is True or (isinstance(verify, str) and verify)  # on, with the default or a CA bundle


def test_the_key_is_registered_with_the_secrets_masker(monkeypatch, commpeak_conn):
    from airflow_provider_commpeak.hooks import commpeak as hook_module

    masked: list[str] = []
    monkeypatch.setattr(hook_module, "_mask_secret", masked.append)
    assert hook_module.CommPeakHook().config.api_key
    from conftest import API_KEY as CONN_KEY

    assert masked == [CONN_KEY]


def rendered_fields(dag_id: str, run_id: str) -> dict[str, dict]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(RenderedTaskInstanceFields).filter_by(dag_id=dag_id, run_id=run_id).all()
        return {row.task_id: row.rendered_fields for row in rows}


def test_rendered_fields_stored_by_airflow_hold_no_number_or_text(airflow_db, commpeak_sandbox):
    """After ``dag.test()``: what the UI's "Rendered Templates" shows, read back from the metadata database."""
    spec = importlib.util.spec_from_file_location("pii_rendered_constants", TEST_DAGS / "pii_rendered.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = dag_bag(TEST_DAGS / "pii_rendered.py").dags["pii_rendered"]
    dag_run = dag.test()
    states = task_states(dag.dag_id, dag_run.run_id)
    assert states["send_messages"] == states["send_recipients"] == "success"
    assert states["send_invalid"] == "failed"  # validation: nothing sent
    stored = rendered_fields(dag.dag_id, dag_run.run_id)
    assert {"send_messages", "send_recipients", "send_invalid"} <= set(stored)
    text = json.dumps(stored)
    for number in [*module.NUMBERS, module.BAD_NUMBER]:
        assert number not in text, f"full number {number[:4]}... in the rendered fields"
    for secret in module.TEXTS:
        assert secret not in text, "a message text in the rendered fields"
    assert "<hidden: 3 number(s); 9725****292" in stored["send_recipients"]["recipients"]
    assert stored["send_messages"]["messages"].startswith("<hidden: 3 message(s)")
