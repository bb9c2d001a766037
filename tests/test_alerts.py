"""Alerts people can live with: a default text, a segment budget, one SMS per event, quiet periods."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from airflow_provider_commpeak._engine.alerts import default_text, read_event, trim_to_segments
from airflow_provider_commpeak._input.segments import count_segments
from airflow_provider_commpeak.exceptions import CommPeakAuthError, CommPeakValidationError
from airflow_provider_commpeak.notifications import commpeak as notifications
from airflow_provider_commpeak.notifications.commpeak import CommPeakSmsNotifier
from helpers import SEND_URL, accepted_answer, sent_ids


def task_context(
    state="failed",
    try_number=2,
    max_tries=2,
    task_id="load",
    map_index=-1,
    run_id="scheduled__2026-11-27",
    **extra,
):
    ti = SimpleNamespace(
        dag_id="etl_daily",
        task_id=task_id,
        map_index=map_index,
        try_number=try_number,
        max_tries=max_tries,
        state=state,
    )
    return {
        "ti": ti,
        "run_id": run_id,
        "dag_run": SimpleNamespace(run_id=run_id, dag_id="etl_daily"),
        **extra,
    }


def dag_context(reason="task_failure"):
    return {"dag": SimpleNamespace(dag_id="etl_daily"), "run_id": "manual__1", "reason": reason}


DEADLINE_CONTEXT = {
    "dag_run": {"dag_id": "etl_daily", "dag_run_id": "manual__9"},
    "deadline": {"id": "d-1", "deadline_time": "x"},
}


@pytest.fixture(autouse=True)
def _fresh_process_memory(monkeypatch):
    monkeypatch.setattr(notifications, "_RECENT", notifications.RecentEvents())


@pytest.mark.parametrize(
    ("context", "text"),
    [
        (task_context(), "Airflow: etl_daily / load failed (try 2/3), run scheduled__2026-11-27"),
        (
            task_context(state="up_for_retry", try_number=1),
            "Airflow: etl_daily / load failed, will retry (try 1/3), run scheduled__2026-11-27",
        ),
        (
            task_context(state="success", max_tries=0, map_index=4),
            "Airflow: etl_daily / load[4] succeeded, run scheduled__2026-11-27",
        ),
        (dag_context(), "Airflow: etl_daily failed, run manual__1"),
        (dag_context("success"), "Airflow: etl_daily succeeded, run manual__1"),
        (DEADLINE_CONTEXT, "Airflow: etl_daily missed its deadline, run manual__9"),
    ],
)
def test_the_default_text_says_what_happened(context, text):
    assert default_text(read_event(context), max_segments=1) == text


def test_a_link_to_the_ui_is_added_when_known_and_dropped_when_it_does_not_fit(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    event = read_event(task_context())
    assert default_text(event, 1).endswith(
        " https://airflow.example.com/dags/etl_daily/runs/scheduled__2026-11-27/tasks/load"
    )
    long_run = read_event(task_context(run_id="scheduled__" + "x" * 100))
    assert "https://" not in default_text(long_run, 1)
    assert count_segments(default_text(long_run, 1)).segments == 1
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://localhost:8080")
    assert "localhost" not in default_text(read_event(task_context()), 1)


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a" * 400, 1),
        ("a" * 400, 2),
        ("ש" * 200, 1),
        ("€" * 100, 1),
        ("a" * 152 + "€" * 10, 1),
        ("😀" * 50, 1),
    ],
)
def test_texts_are_trimmed_to_the_segment_budget(text, segments):
    trimmed = trim_to_segments(text, segments)
    assert count_segments(trimmed).segments <= segments
    assert trimmed.endswith("...")
    assert len(trimmed) > len(trim_to_segments(text, segments - 1)) if segments > 1 else True
    assert trim_to_segments("short", 1) == "short"


@pytest.fixture
def api(commpeak_conn, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    return requests_mock


def notifier(**kwargs) -> CommPeakSmsNotifier:
    return CommPeakSmsNotifier(**{"recipients": ["972524265292", "+972 54-533-0008"], "sender": "ALERTS", **kwargs})


def test_one_event_one_alert_even_when_the_callback_fires_twice(api, logs):
    notifier().notify(task_context())
    notifier().notify(task_context())
    assert api.call_count == 1
    assert "already sent by this process" in logs.text


def test_ids_derive_from_the_event_so_another_process_sends_the_same_ids(api, monkeypatch):
    notifier().notify(task_context())
    monkeypatch.setattr(notifications, "_RECENT", notifications.RecentEvents())  # a second process
    notifier().notify(task_context())
    notifier().notify(task_context(try_number=3))
    first, second, third = sent_ids(api)
    assert first == second
    assert set(first).isdisjoint(third)
    assert all(i.startswith("alert-") for i in first)


def test_a_failed_send_can_be_tried_again(commpeak_conn, requests_mock):
    requests_mock.post(SEND_URL, [{"status_code": 403}, {"json": accepted_answer}])
    with pytest.raises(CommPeakAuthError):
        notifier().notify(task_context())
    notifier().notify(task_context())
    assert requests_mock.call_count == 2


def test_the_default_text_is_one_segment_and_custom_texts_are_trimmed(api):
    notifier().notify(task_context(task_id="t" * 300))
    notifier(message_content="x" * 500, max_segments=2).notify(task_context(try_number=9))
    texts = [r.json()["messages"][0]["message_content"] for r in api.request_history]
    assert count_segments(texts[0]).segments == 1
    assert texts[0].endswith("...")
    assert count_segments(texts[1]).segments == 2
    assert texts[1].endswith("...")


@pytest.mark.parametrize(
    ("kwargs", "problem"), [({"max_segments": 0}, "max_segments"), ({"min_interval": -1}, "min_interval")]
)
def test_bad_arguments_are_refused(kwargs, problem):
    with pytest.raises(CommPeakValidationError, match=problem):
        notifier(**kwargs)


def test_min_interval_suppresses_repeats_across_runs(airflow_db, api, monkeypatch, logs):
    clock = [1_000_000.0]
    monkeypatch.setattr(notifications.time, "time", lambda: clock[0])
    quiet = notifier(recipients=["972524265292"], min_interval=600)
    quiet.notify(task_context(run_id="run-1"))
    clock[0] += 300
    quiet.notify(task_context(run_id="run-2"))  # same DAG/task/recipient, 5 minutes later: suppressed
    assert api.call_count == 1
    assert "suppressed" in logs.text
    notifier(recipients=["+972 54-533-0008"], min_interval=600).notify(task_context(run_id="run-2"))
    assert api.call_count == 2  # another recipient is not suppressed
    clock[0] += 301
    quiet.notify(task_context(run_id="run-3"))
    assert api.call_count == 3


def test_a_deadline_alert_sends_from_the_async_path(api):
    import asyncio

    asyncio.run(notifier().async_notify(DEADLINE_CONTEXT))
    [request] = api.request_history
    assert request.json()["messages"][0]["message_content"] == "Airflow: etl_daily missed its deadline, run manual__9"


def test_deadline_alert_kwargs_are_json_and_the_notifier_is_awaitable():
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_1_PLUS:
        pytest.skip("Deadline Alerts need Airflow >= 3.1")
    from airflow.sdk import AsyncCallback

    callback = AsyncCallback(CommPeakSmsNotifier, kwargs={"recipients": ["972524265292"], "sender": "ALERTS"})
    assert json.loads(json.dumps(callback.serialize()))["path"].endswith("CommPeakSmsNotifier")


def test_an_alert_the_api_refused_neither_starts_min_interval_nor_counts_as_sent(
    airflow_db, commpeak_conn, requests_mock, monkeypatch
):
    from airflow_provider_commpeak.exceptions import CommPeakSendError
    from helpers import send_answer

    clock = [2_000_000.0]
    monkeypatch.setattr(notifications.time, "time", lambda: clock[0])

    def refuse(request, context):
        return send_answer(*[(m["internal_id"], None, "NO_ROUTES") for m in request.json()["messages"]])

    requests_mock.post(SEND_URL, [{"json": refuse}, {"json": accepted_answer}, {"json": accepted_answer}])
    quiet = notifier(recipients=["972524265292"], min_interval=600)
    with pytest.raises(CommPeakSendError):
        quiet.notify(task_context(run_id="run-1"))
    quiet.notify(task_context(run_id="run-1"))  # the same event again: the refused alert was not "sent"
    clock[0] += 10
    quiet.notify(task_context(run_id="run-2"))  # now min_interval runs from the accepted one
    assert requests_mock.call_count == 2


def test_min_interval_is_claimed_before_the_send_so_a_racing_callback_is_suppressed(airflow_db, api, monkeypatch):
    """Two mapped tasks failing 1.5 s apart: the second reads the claim the first wrote before sending."""
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

    seen: list[int] = []
    original_send = CommPeakHook.send_messages

    def send_while_another_callback_runs(self, *args, **kwargs):
        other = notifier(recipients=["972524265292"], min_interval=600)
        seen.append(len(other._recipients(read_event(task_context(map_index=2)), ["972524265292"])))
        return original_send(self, *args, **kwargs)

    monkeypatch.setattr(CommPeakHook, "send_messages", send_while_another_callback_runs)
    notifier(recipients=["972524265292"], min_interval=600).notify(task_context(map_index=1))
    assert seen == [0]
    assert api.call_count == 1


def test_an_alert_held_back_by_min_interval_is_not_remembered_as_sent(airflow_db, api, monkeypatch):
    clock = [3_000_000.0]
    monkeypatch.setattr(notifications.time, "time", lambda: clock[0])
    quiet = notifier(recipients=["972524265292"], min_interval=600)
    quiet.notify(task_context(run_id="run-1", task_id="a"))
    quiet.notify(task_context(run_id="run-2", task_id="a"))  # within min_interval: held back
    clock[0] += 601
    quiet.notify(task_context(run_id="run-2", task_id="a"))  # the same event, later: it goes out now
    assert api.call_count == 2
