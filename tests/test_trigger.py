"""SmsStatusTrigger.run() against the sandbox over real HTTP, one test per outcome."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import unittest.mock

import pytest
import requests

from airflow_provider_commpeak.sandbox import TEST_NUMBERS
from airflow_provider_commpeak.triggers.commpeak import SmsStatusTrigger

pytestmark = pytest.mark.sandbox

NEVER_FINAL = next(n for n, s in TEST_NUMBERS.items() if s == "sent")
UNDELIVERED = next(n for n, s in TEST_NUMBERS.items() if s == "undelivered")


def send(sandbox, numbers: list[str]) -> list[str]:
    body = {
        "messages": [
            {"internal_id": f"t{i}", "sender": "S", "recipient_phone": n, "message_content": "x"}
            for i, n in enumerate(numbers)
        ]
    }
    answer = requests.post(
        f"{sandbox.url}/simple_send/", json=body, headers={"Authorization": sandbox.api_key}, timeout=5
    )
    return [m["message_uuid"] for m in answer.json()["messages"]]


def trigger(uuids: list[str] | None, **kwargs) -> SmsStatusTrigger:
    options = {
        "message_uuids": uuids,
        "commpeak_conn_id": "commpeak_default",
        "success_statuses": ["delivered"],
        "failure_statuses": ["sent_failed", "undelivered", "no_routes", "rejected"],
        "allowed_failures": 0,
        "poll_interval": 0.05,
        "end_time": time.time() + 30,
        "max_consecutive_errors": 3,
    }
    options.update(kwargs)
    return SmsStatusTrigger(**options)


def first_event(t: SmsStatusTrigger, timeout: float = 30) -> dict:
    async def run():
        async for event in t.run():
            return event.payload

    return asyncio.run(asyncio.wait_for(run(), timeout))


def test_all_delivered(commpeak_sandbox):
    uuids = send(commpeak_sandbox, ["972524265292", "972545330008"])
    event = first_event(trigger(uuids))
    assert event["status"] == "success"
    assert (event["total"], event["succeeded"], event["failed"], event["pending"]) == (2, 2, 0, 0)
    assert event["counts"] == {"delivered": 2}
    assert "statuses" not in event
    assert commpeak_sandbox.requests["/simple_send/"] == 1  # a trigger never sends


def test_failures_over_the_threshold(commpeak_sandbox):
    uuids = send(commpeak_sandbox, ["972524265292", UNDELIVERED])
    event = first_event(trigger(uuids))
    assert event["status"] == "failure"
    assert event["failed_uuids"] == [uuids[1]]
    assert event["counts"]["undelivered"] == 1


def test_failures_within_the_threshold_succeed(commpeak_sandbox):
    uuids = send(commpeak_sandbox, ["972524265292", UNDELIVERED])
    assert first_event(trigger(uuids, allowed_failures=1))["status"] == "success"


def test_deadline_passed(commpeak_sandbox):
    uuids = send(commpeak_sandbox, ["972524265292", NEVER_FINAL])
    started = time.monotonic()
    event = first_event(trigger(uuids, end_time=time.time() + 1.0))
    assert event["status"] == "timeout"
    assert "1 message(s) pending" in event["message"]
    assert 0.9 <= time.monotonic() - started < 10


def test_unknown_statuses_stay_pending_until_the_deadline(commpeak_sandbox):
    event = first_event(trigger(["no-such-uuid"], end_time=time.time() + 0.5))
    assert event["status"] == "timeout"
    assert event["counts"] == {"unknown": 1}
    assert event["pending"] == 1


def test_error_streak_ends_the_wait(commpeak_sandbox, delays):
    """Each poll is retried by the hook's policy (1 + 5 tries); three failed polls end the wait."""
    uuids = send(commpeak_sandbox, ["972524265292"])
    commpeak_sandbox.inject("503", count=100, path="/messages_status/")
    event = first_event(trigger(uuids, poll_interval=0.01))
    assert event["status"] == "error"
    assert "3 status polls in a row failed" in event["message"]
    assert "HTTP 503" in event["message"]
    assert commpeak_sandbox.requests["/messages_status/"] == 3 * 6


def test_an_error_between_successes_does_not_end_the_wait(commpeak_sandbox, delays):
    uuids = send(commpeak_sandbox, ["972524265292"])
    commpeak_sandbox.inject("html", count=2, path="/messages_status/")
    assert first_event(trigger(uuids, poll_interval=0.01))["status"] == "success"


def test_refused_key_is_an_error_at_once(commpeak_sandbox):
    commpeak_sandbox.inject("403", path="/messages_status/")
    event = first_event(trigger(["u"]))
    assert event["status"] == "error"
    assert "refused the API key" in event["message"]


def test_serialize_round_trips_through_json_without_the_key(commpeak_sandbox):
    original = trigger(["u1", "u2"], allowed_failures=2)
    classpath, kwargs = original.serialize()
    text = json.dumps(kwargs)
    assert commpeak_sandbox.api_key not in text
    rebuilt = SmsStatusTrigger(**json.loads(text))
    assert rebuilt.serialize() == (classpath, kwargs)


def test_a_report_path_is_read_by_the_trigger_and_its_kwargs_stay_small(commpeak_sandbox, tmp_path):
    uuids = send(commpeak_sandbox, ["972524265292", "972545330008", UNDELIVERED])
    path = tmp_path / "report.jsonl"
    path.write_text(
        "".join(
            json.dumps({"internal_id": f"m{i}", "message_uuid": u, "error": None}) + "\n" for i, u in enumerate(uuids)
        )
    )
    t = trigger(None, report_path=str(path), allowed_failures=1)
    _, kwargs = t.serialize()
    assert "message_uuids" not in kwargs
    assert len(json.dumps(kwargs)) < 1024
    event = first_event(t)
    assert event["status"] == "success"
    assert (event["succeeded"], event["failed"]) == (2, 1)


def test_each_poll_logs_one_line_of_counts(commpeak_sandbox, logs):
    uuids = send(commpeak_sandbox, ["972524265292", UNDELIVERED])
    first_event(trigger(uuids, allowed_failures=1))
    assert "Waiting for delivery: 1 delivered, 1 undelivered, 0 pending of 2" in logs.text


def test_kwargs_of_a_trigger_deferred_by_version_1_still_work(commpeak_sandbox):
    uuids = send(commpeak_sandbox, ["972524265292"])
    old = {k: v for k, v in trigger(uuids).serialize()[1].items() if k != "message_uuids"}
    old["statuses"] = dict.fromkeys(uuids, "sent")
    assert first_event(SmsStatusTrigger(**old))["status"] == "success"


def test_the_hooks_async_client_is_closed_when_the_trigger_ends(commpeak_sandbox, monkeypatch):
    from airflow_provider_commpeak._engine.transport import AsyncTransport

    closed = []
    real = AsyncTransport.aclose

    async def aclose(self):
        closed.append(self)
        await real(self)

    monkeypatch.setattr(AsyncTransport, "aclose", aclose)
    first_event(trigger(send(commpeak_sandbox, ["972524265292"])))
    assert len(closed) == 1


def test_a_missing_connection_is_an_error_at_once(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", raising=False)
    event = first_event(trigger(["u"], commpeak_conn_id="no_such_conn"))
    assert event["status"] == "error"
    assert "no_such_conn" in event["message"]


def test_one_slow_poll_never_outlives_the_deadline(commpeak_sandbox, delays):
    """A poll retrying inside the hook (backoff, 30 s timeouts) used to run minutes past end_time."""
    uuids = send(commpeak_sandbox, [NEVER_FINAL])
    commpeak_sandbox.inject("hang", seconds=60)
    started = time.monotonic()
    event = first_event(trigger(uuids, end_time=time.time() + 1.5), timeout=40)
    assert event["status"] == "timeout"
    assert "1 message(s) pending" in event["message"]
    assert time.monotonic() - started < 30


def test_a_report_that_cannot_be_read_is_not_said_to_have_sent_nothing(commpeak_sandbox, tmp_path):
    event = first_event(trigger(None, report_path=str(tmp_path / "missing.csv")))
    assert event["status"] == "error"
    assert "nothing was sent" not in event["message"]
    assert "cannot be read" in event["message"]


def test_hook_params_reach_the_triggers_hook_and_survive_serialization(commpeak_sandbox, delays):
    """``max_retries=0``: each failed poll is one request; a failed poll waits as the policy says."""
    uuids = send(commpeak_sandbox, ["972524265292"])
    commpeak_sandbox.inject("503", count=100, path="/messages_status/")
    original = trigger(
        uuids, poll_interval=0.01, max_consecutive_errors=8, hook_params={"max_retries": 0, "backoff_max": 0.02}
    )
    _classpath, kwargs = original.serialize()
    rebuilt = SmsStatusTrigger(**json.loads(json.dumps(kwargs)))
    assert rebuilt.hook_params == {"max_retries": 0, "backoff_max": 0.02}
    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def record(seconds: float, *args, **kwargs):
        if sys._getframe(1).f_code.co_name == "run":  # the trigger's waits between polls, not the hook's pace
            waits.append(seconds)
        await real_sleep(0)

    with unittest.mock.patch("airflow_provider_commpeak.triggers.commpeak.asyncio.sleep", record):
        event = first_event(rebuilt)
    assert event["status"] == "error"
    assert commpeak_sandbox.requests["/messages_status/"] == 8  # one try per poll, no retries
    assert len(waits) == 7
    assert max(waits) <= 0.02  # capped by the hook's backoff_max (uncapped, the 7th would be 0.32-0.64 s)


def test_a_trigger_without_hook_params_serializes_as_before():
    _classpath, kwargs = trigger(["u"]).serialize()
    assert "hook_params" not in kwargs


def test_a_poll_goes_slice_by_slice_and_a_duplicate_is_waited_for_once(commpeak_sandbox, monkeypatch):
    import airflow_provider_commpeak.triggers.commpeak as module

    monkeypatch.setattr(module, "POLL_SLICE", 2)
    asked: list[int] = []
    real = module.CommPeakHook.aget_statuses

    async def counted(self, uuids, *, batch_size=500):
        asked.append(len(uuids))
        return await real(self, uuids, batch_size=batch_size)

    monkeypatch.setattr(module.CommPeakHook, "aget_statuses", counted)
    uuids = send(commpeak_sandbox, ["972524265292", "972545330008"] * 2 + ["972524265292"])
    event = first_event(trigger([*uuids, uuids[0]]))
    assert (event["status"], event["total"], event["succeeded"]) == ("success", 5, 5)
    assert asked[:3] == [2, 2, 1]  # the first poll: 5 distinct uuids, 2 at a time


def test_a_poll_that_fails_half_way_changes_nothing_and_the_next_one_counts_each_message_once(
    commpeak_sandbox, monkeypatch
):
    import airflow_provider_commpeak.triggers.commpeak as module
    from airflow_provider_commpeak.exceptions import CommPeakApiError

    monkeypatch.setattr(module, "POLL_SLICE", 2)
    real, calls = module.CommPeakHook.aget_statuses, []

    async def second_slice_fails_once(self, uuids, *, batch_size=500):
        calls.append(len(uuids))
        if len(calls) == 2:
            raise CommPeakApiError("status poll failed")
        return await real(self, uuids, batch_size=batch_size)

    monkeypatch.setattr(module.CommPeakHook, "aget_statuses", second_slice_fails_once)
    uuids = send(commpeak_sandbox, ["972524265292", "972545330008", "447700900123", UNDELIVERED])
    event = first_event(trigger(uuids, allowed_failures=1))
    assert (event["status"], event["total"], event["succeeded"], event["failed"]) == ("success", 4, 3, 1)
    assert event["counts"] == {"delivered": 3, "undelivered": 1}
