"""``hook_params``: the hook's settings given on the operator, sensor and notifier, checked at DAG parse."""

from __future__ import annotations

import pytest

from airflow_provider_commpeak._engine.arguments import HOOK_PARAMS, hook_params_problems
from airflow_provider_commpeak.exceptions import CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.notifications.commpeak import CommPeakSmsNotifier
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

SETTINGS = {"timeout": 7, "max_retries": 2, "backoff_base": 0.5, "backoff_max": 9}


def build(kind: str, hook_params):
    if kind == "operator":
        return SendSmsOperator(task_id="s", recipients=["972524265292"], message_content="x", hook_params=hook_params)
    if kind == "sensor":
        return SmsStatusSensor(task_id="w", message_uuids=["u"], hook_params=hook_params)
    return CommPeakSmsNotifier(recipients=["972524265292"], sender="S", hook_params=hook_params)


@pytest.mark.parametrize("kind", ["operator", "sensor", "notifier"])
def test_each_setting_reaches_the_hook(kind):
    hook = build(kind, SETTINGS).hook
    assert isinstance(hook, CommPeakHook)
    assert hook.timeout == 7
    assert hook.retry_policy.max_retries == 2
    assert hook.retry_policy.backoff_base == 0.5
    assert hook.retry_policy.backoff_max == 9


@pytest.mark.parametrize("kind", ["operator", "sensor", "notifier"])
def test_bad_hook_params_are_refused_at_dag_parse_all_at_once(kind):
    with pytest.raises(CommPeakValidationError) as info:
        build(kind, {"timeout": float("inf"), "max_retries": -1, "clock": 1.0})
    text = "\n".join(info.value.problems)
    assert "timeout" in text
    assert "max_retries" in text
    assert "unknown key(s) clock" in text


def test_hook_params_must_be_a_mapping():
    assert hook_params_problems(["timeout"]) == ["hook_params must be a dict, got list"]
    assert hook_params_problems(None) == []


def test_every_allowed_key_is_a_hook_argument():
    import inspect

    assert set(HOOK_PARAMS) <= set(inspect.signature(CommPeakHook.__init__).parameters)


def test_the_operators_rate_limit_timeout_is_not_set_twice():
    with pytest.raises(CommPeakValidationError, match="not in hook_params"):
        build("operator", {"rate_limit_timeout": 5})
    op = SendSmsOperator(
        task_id="s", recipients=["972524265292"], message_content="x", rate_limit_timeout=30, hook_params=SETTINGS
    )
    assert op.hook.rate_limit_timeout == 30


def test_max_rate_is_the_operators_argument_and_reaches_its_hook():
    op = SendSmsOperator(task_id="s", recipients=["972524265292"], message_content="x", max_rate=12.5)
    assert op.hook.max_rate == 12.5
    assert op.hook.rate_controller.max_rate == 12.5
    with pytest.raises(CommPeakValidationError, match="unknown key"):
        SendSmsOperator(task_id="s", recipients=["972524265292"], message_content="x", hook_params={"max_rate": 5})


def test_the_hook_refuses_the_same_bounds():
    with pytest.raises(CommPeakValidationError, match="max_retries must be an int between 0 and 100"):
        CommPeakHook(max_retries=101)
