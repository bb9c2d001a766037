"""Quiet hours: messages go out only inside their recipients' local send window, deferred, never doubled."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_commpeak._input.send_window import SendWindow, time_zones_of
from airflow_provider_commpeak.exceptions import CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook, Safeguards
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from helpers import SEND_URL, accepted_answer, message, sent_ids
from helpers.fakes import FakeStateStore, make_context

IL, NY, RU_MOBILE = "972524265292", "12025550123", "79161234567"
WINDOW = SendWindow(time(8), time(21))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- the window itself, pure --------------------------------------------------------------------------


def test_open_in_the_recipients_local_time():
    zones = time_zones_of(IL)
    assert zones == ("Asia/Jerusalem",)
    assert WINDOW.is_open(zones, utc(2026, 12, 1, 7, 0))  # 09:00 in Israel (timezone.utc+2)
    assert not WINDOW.is_open(zones, utc(2026, 12, 1, 19, 30))  # 21:30 there
    assert WINDOW.next_open(zones, utc(2026, 12, 1, 19, 30)) == utc(2026, 12, 2, 6, 0)
    assert WINDOW.closes_at(zones, utc(2026, 12, 1, 7, 0)) == utc(2026, 12, 1, 19, 0)


def test_a_number_spanning_zones_needs_the_window_open_in_all_of_them():
    zones = time_zones_of(RU_MOBILE)  # a Russian mobile range: Kaliningrad to Kamchatka
    assert len(zones) > 5
    moment = utc(2026, 12, 1, 5, 30)  # 08:30 in Moscow, 07:30 in Bucharest (the range's westernmost zone)
    assert WINDOW.is_open(("Europe/Moscow",), moment)
    assert not WINDOW.is_open(zones, moment)
    opening = WINDOW.next_open(zones, moment)
    assert opening is None or all(WINDOW.is_open((z,), opening) for z in zones)


def test_a_window_that_wraps_midnight_and_weekdays():
    night = SendWindow(time(22), time(6), days=frozenset({4}))  # Friday night only
    zones = ("Asia/Jerusalem",)
    friday_23 = utc(2026, 12, 4, 21, 0)  # Friday 23:00 in Israel
    saturday_03 = utc(2026, 12, 5, 1, 0)  # Saturday 03:00: still Friday's window
    saturday_23 = utc(2026, 12, 5, 21, 0)
    assert night.is_open(zones, friday_23)
    assert night.is_open(zones, saturday_03)
    assert not night.is_open(zones, saturday_23)
    assert night.next_open(zones, saturday_23) == utc(2026, 12, 11, 20, 0)


@pytest.mark.parametrize(
    ("window", "days", "problem"),
    [
        (("25:00", "21:00"), None, "send_window: '25:00' is not a time of day"),
        (("08:00",), None, "send_window must be a pair of local times"),
        (("08:00", "08:00"), None, "opens and closes at the same time"),
        (("08:00", "21:00"), ["funday"], "'funday' is not a weekday"),
        (None, ["mon"], "send_window_days needs send_window"),
    ],
)
def test_bad_windows_are_refused_at_dag_parse(window, days, problem):
    with pytest.raises(CommPeakValidationError, match=problem):
        SendSmsOperator(task_id="send", recipients=[IL], message_content="x", send_window=window, send_window_days=days)


# -- sending ------------------------------------------------------------------------------------------


@pytest.fixture
def api(commpeak_conn, delays, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    return requests_mock


@pytest.fixture
def now(monkeypatch):
    """The wall clock the window is judged by (staging reads it once per send)."""

    class Clock:
        value = utc(2026, 12, 1, 7, 0)  # 09:00 in Israel, 02:00 in New York

    monkeypatch.setattr("airflow_provider_commpeak._input.send_window.utcnow", lambda: Clock.value)
    return Clock


def test_the_hook_holds_back_who_is_outside_the_window(api, now):
    outcome = CommPeakHook().send_messages(
        [message(0, phone=IL), message(1, phone=NY)],
        safeguards=Safeguards.build(send_window=("08:00", "21:00")),
    )
    assert sent_ids(api) == [["m0"]]
    assert outcome.results["m1"]["error"] == "WAITING"
    assert outcome.failed == 0
    assert outcome.resume_at == "2026-12-01T13:00:00+00:00"  # 08:00 in New York


def test_the_dry_run_says_what_can_go_now_and_when_the_rest_can(api, now):
    stats = CommPeakHook().dry_run(
        [message(0, phone=IL), message(1, phone=NY)], safeguards=Safeguards.build(send_window=("08:00", "21:00"))
    )
    data = stats.to_dict()
    assert (data["sendable_now"], data["waiting_for_window"]) == (1, 1)
    assert data["window_next_open"] == "2026-12-01T13:00:00+00:00"
    assert api.call_count == 0


def test_the_operator_defers_then_resumes_sending_each_message_once(api, now):
    store = FakeStateStore()
    op = SendSmsOperator(
        task_id="send",
        messages=[message(0, phone=IL), message(1, phone=NY), message(2, phone="12125550199")],
        send_window=("08:00", "21:00"),
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(make_context(store=store))
    assert deferred.value.method_name == "resume_send"
    assert deferred.value.trigger.moment == utc(2026, 12, 1, 13, 0)
    assert sent_ids(api) == [["m0"]]
    now.value = utc(2026, 12, 1, 13, 0)  # the trigger fired: 08:00 in New York
    result = op.resume_send(make_context(store=store), event=None)
    assert sent_ids(api) == [["m0"], ["m1", "m2"]]  # m0 not again: the ledger has it
    assert result["accepted"] == 3
    assert [r["error"] for r in result["results"].values()] == [None, None, None]


def test_a_send_window_needs_a_ledger(api, now, monkeypatch):
    monkeypatch.delenv("AIRFLOW__COMMPEAK__LEDGER_PATH", raising=False)
    op = SendSmsOperator(task_id="send", recipients=[IL], message_content="x", send_window=("08:00", "21:00"))
    with pytest.raises(CommPeakValidationError, match="send_window needs a send ledger"):
        op.execute(make_context())
    assert api.call_count == 0


def test_a_window_opening_after_valid_until_expires_the_message(api, now):
    outcome = CommPeakHook().send_messages(
        [message(0, phone=IL), message(1, phone=NY)],
        safeguards=Safeguards.build(send_window=("08:00", "21:00")),
        valid_until=now.value + timedelta(hours=1),
    )
    assert {k: v["error"] for k, v in outcome.results.items()} == {"m0": None, "m1": "EXPIRED"}
    assert outcome.resume_at is None


def test_the_window_closing_mid_send_stops_sending_on_time(commpeak_conn, delays, requests_mock, now):
    from helpers.ratesim import FakeClock

    now.value = utc(2026, 12, 1, 18, 59, 50)  # 20:59:50 in Israel: ten seconds left
    clock = FakeClock()
    times: list[float] = []

    def slow_accept(request, context):
        times.append(clock())
        clock.sleep(4)  # each request takes 4 s
        return accepted_answer(request, context)

    requests_mock.post(SEND_URL, json=slow_accept)
    hook = CommPeakHook(clock=clock, sleep=clock.sleep)
    start = clock()
    outcome = hook.send_messages(
        [message(i, phone=f"97252{i:07d}") for i in range(10)],
        batch_size=1,
        max_concurrency=1,
        safeguards=Safeguards.build(send_window=("08:00", "21:00")),
    )
    assert max(times) < start + 10.5, "a request started after the window closed"
    assert outcome.accepted == len(times)
    assert outcome.errors == {"WAITING": 10 - len(times)}
    assert outcome.resume_at is not None


def test_a_deferral_that_outlives_valid_until_expires_the_waiting_messages(api, now):
    """Deferred for the window; by the time it opens the OTPs are worthless: EXPIRED, never sent late."""
    store = FakeStateStore()
    op = SendSmsOperator(
        task_id="send",
        messages=[message(0, phone=IL), message(1, phone=NY)],
        send_window=("08:00", "21:00"),
        valid_until=utc(2026, 12, 1, 13, 30),  # New York's window opens at 13:00 timezone.utc
        allowed_failures=1,
    )
    with pytest.raises(TaskDeferred):
        op.execute(make_context(store=store))
    now.value = utc(2026, 12, 1, 13, 45)  # the triggerer was slow: resumed after valid_until
    result = op.resume_send(make_context(store=store), event=None)
    assert sent_ids(api) == [["m0"]]
    assert {k: v["error"] for k, v in result["results"].items()} == {"m0": None, "m1": "EXPIRED"}


def test_a_message_sent_before_the_window_closed_is_reported_accepted_after_the_deferral(api, now):
    """Try 1 sends Israel (open) and defers for New York; at the resume Israel's window has closed."""
    store = FakeStateStore()
    op = SendSmsOperator(
        task_id="send", messages=[message(0, phone=IL), message(1, phone=NY)], send_window=("08:00", "21:00")
    )
    with pytest.raises(TaskDeferred):
        op.execute(make_context(store=store))
    now.value = utc(2026, 12, 2, 0, 0)  # 19:00 in New York (open), 02:00 in Israel (closed)
    result = op.resume_send(make_context(store=store), event=None)
    assert sent_ids(api) == [["m0"], ["m1"]]
    assert {k: v["error"] for k, v in result["results"].items()} == {"m0": None, "m1": None}  # no WAITING left
