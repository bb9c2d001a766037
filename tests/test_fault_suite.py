"""
The fault suite: 5,000 messages in batches against the sandbox under each fault.

For every fault it asserts, on the sandbox's record and on the report: no message accepted twice;
every message accounted for (accepted, or failed with a reason); the report never claims an
acceptance the server does not have, and every acceptance the report does not claim is
``UNCONFIRMED``. The figures are printed at the end of the run (docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from airflow_provider_commpeak._engine.report import UNCONFIRMED, SendReport
from airflow_provider_commpeak.exceptions import CommPeakAuthError, CommPeakSendError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sandbox import CommPeakSandbox
from helpers import free_port, message
from helpers.fakes import FakeStateStore, make_context
from helpers.faults import FAULT_FIGURES

pytestmark = [pytest.mark.faults, pytest.mark.sandbox]

N = 5000
BATCH = 100
MESSAGES = [message(i) for i in range(N)]


def send(*, timeout: float | None = None, **kwargs: Any) -> SendReport:
    hook = CommPeakHook(timeout=timeout, max_retries=4, backoff_base=0.01, backoff_max=0.2)
    options = {"batch_size": BATCH, "max_concurrency": 4}
    options.update(kwargs)
    try:
        return hook.send_messages(MESSAGES, **options)
    except CommPeakAuthError as exc:
        if exc.report is None:
            raise
        return exc.report
    finally:
        hook.close()


def check(scenario: str, fault: str, sandbox: CommPeakSandbox | None, report: SendReport) -> dict[str, Any]:
    """Assert the guarantees and record the figures of one scenario."""
    record = sandbox.accepted if sandbox else []
    times = Counter(m["internal_id"] for m in record)
    server_uuid = {m["internal_id"]: m["message_uuid"] for m in record}
    results = report.results
    claimed = {i for i, r in results.items() if r["error"] is None}
    unconfirmed = {i for i, r in results.items() if r["error"] == UNCONFIRMED}

    assert set(results) == {m["internal_id"] for m in MESSAGES}, "a message is missing from the report"
    assert all(r["error"] for i, r in results.items() if i not in claimed), "a failure without a reason"
    assert max(times.values(), default=0) <= 1, "a message was accepted twice"
    assert claimed <= set(times), "the report claims an acceptance the server does not have"
    assert all(results[i]["message_uuid"] == server_uuid[i] for i in claimed)
    assert set(times) <= claimed | unconfirmed, "an acceptance the report neither claims nor flags"

    figures = {
        "scenario": scenario,
        "fault": fault,
        "messages": N,
        "accepted": len(claimed),
        "unconfirmed": len(unconfirmed),
        "unconfirmed_but_accepted": len(unconfirmed & set(times)),
        "failed_other": len(results) - len(claimed) - len(unconfirmed),
        "errors": report.describe_errors() or "-",
        "lost": N - len(results),
        "duplicated": sum(t - 1 for t in times.values()),
        "requests": (sandbox.requests.get("/simple_send/", 0) if sandbox else 0),
    }
    FAULT_FIGURES.append(figures)
    return figures


def test_no_fault_baseline(sandbox):
    figures = check("baseline", "none", sandbox, send())
    assert figures["accepted"] == N
    assert figures["requests"] == N // BATCH


def test_503_bursts_are_retried(sandbox):
    sandbox.inject("503", count=3, after=5)
    sandbox.inject("503", count=3, after=20)
    figures = check("503 bursts", "2 bursts of 3x 503", sandbox, send())
    assert figures["accepted"] == N


def test_429_with_retry_after_is_honoured(sandbox):
    sandbox.inject("429", count=8, retry_after=0.05, after=3)
    assert check("429 + Retry-After", "8x 429, Retry-After 0.05 s", sandbox, send())["accepted"] == N


def test_connection_refused_fails_every_message_with_a_resendable_reason(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_COMMPEAK_DEFAULT",
        json.dumps({"conn_type": "commpeak", "password": "k", "host": f"http://127.0.0.1:{free_port()}"}),
    )
    report = send()
    figures = check("connection refused", "nothing listening", None, report)
    assert set(report.errors_by_kind()) == {"CONNECTION_ERROR", "NOT_SENT"}
    assert report.errors_by_kind()["CONNECTION_ERROR"] <= 4 * BATCH  # the batches in flight; the rest never sent
    assert figures["accepted"] == 0


def test_a_trickling_answer_is_cut_at_the_deadline(sandbox):
    sandbox.inject("trickle", count=1, interval=0.2, seconds=30, after=4)
    figures = check("trickled answer", "1x 1 byte / 0.2 s, client timeout 1 s", sandbox, send(timeout=1))
    assert figures["unconfirmed"] == figures["unconfirmed_but_accepted"] == BATCH


def test_a_redirect_is_never_followed(sandbox):
    sandbox.inject("redirect", count=1000, after=6)
    figures = check("redirect mid-run", "307 from request 7 on", sandbox, send())
    assert 6 * BATCH <= figures["accepted"] < N
    assert "HTTP_307" in figures["errors"]


@pytest.mark.parametrize("mode", ["close_after_accept", "close"])
def test_reset_connections_are_unconfirmed_never_resent(sandbox, mode):
    sandbox.inject(mode, count=3, after=10)
    figures = check(f"reset ({mode})", f"3x {mode}", sandbox, send())
    assert figures["unconfirmed"] == 3 * BATCH
    assert figures["unconfirmed_but_accepted"] == (3 * BATCH if mode == "close_after_accept" else 0)


@pytest.mark.parametrize("code", ["500", "502", "504"])
def test_server_errors_after_accepting_are_unconfirmed(sandbox, code):
    sandbox.inject(code, count=2, after=7)
    figures = check(f"{code} after accepting", f"2x {code}", sandbox, send())
    assert figures["unconfirmed"] == figures["unconfirmed_but_accepted"] == 2 * BATCH
    assert figures["accepted"] == N - 2 * BATCH


def test_accept_then_hang_past_the_timeout(sandbox):
    sandbox.inject("hang", count=1, seconds=10, after=4)
    figures = check("accept then hang", "1x hang 10 s, client timeout 1 s", sandbox, send(timeout=1))
    assert figures["unconfirmed"] == figures["unconfirmed_but_accepted"] == BATCH


@pytest.mark.parametrize("rate", [400, 1500])
def test_rate_limit_with_default_settings_loses_nothing(monkeypatch, rate):
    with CommPeakSandbox(rate_limit=rate, delivery_delay=0.1) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sb.connection_json)
        report = CommPeakHook().send_messages(MESSAGES)
        figures = check("RATE_LIMIT", f"sandbox at {rate:,} msg/s, default settings", sb, report)
    assert figures["accepted"] == N


def test_a_one_second_drain_by_another_client_loses_nothing(monkeypatch):
    with CommPeakSandbox(rate_limit=1500, delivery_delay=0.1) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sb.connection_json)
        hook = CommPeakHook()
        drained = []

        def drain_once(report):
            if not drained and len(sb.accepted) >= 2000:
                drained.append(True)
                sb.drain(1.0)

        report = hook.send_messages(MESSAGES, on_batch_done=drain_once)
        figures = check("drain", "1 s drain mid-run at 1,500 msg/s", sb, report)
    assert drained
    assert figures["accepted"] == N


def test_403_mid_run_stops_and_accounts_for_everything(sandbox):
    sandbox.inject("403", count=1000, after=12)
    figures = check("403 mid-run", "403 from request 13 on", sandbox, send())
    assert 12 * BATCH <= figures["accepted"] < N
    report_errors = figures["errors"]
    assert "NOT_SENT" in report_errors


def test_200_that_is_not_json(sandbox):
    sandbox.inject("not_json", count=2, after=9)
    figures = check("200 not JSON", "2x 200 with HTML", sandbox, send())
    assert figures["unconfirmed"] == figures["unconfirmed_but_accepted"] == 2 * BATCH


def test_proxy_html_error_page(sandbox):
    sandbox.inject("html", count=2, after=9)
    figures = check("proxy HTML 502", "2x HTML 502 page", sandbox, send())
    assert figures["unconfirmed"] == 2 * BATCH
    assert figures["unconfirmed_but_accepted"] == 0


@pytest.mark.parametrize(("allowed", "fails"), [(199, True), (200, False), (0.04, False), (0.039, True)])
def test_task_outcome_follows_allowed_failures(sandbox, allowed, fails):
    sandbox.inject("502", count=2, after=3)
    op = SendSmsOperator(task_id="send", messages=MESSAGES, allowed_failures=allowed)
    if fails:
        with pytest.raises(CommPeakSendError, match="200 of 5000 message\\(s\\) failed \\(200 UNCONFIRMED\\)"):
            op.execute(make_context())
    else:
        assert op.execute(make_context())["failed"] == 200


def _die_on_request(monkeypatch, hook: CommPeakHook, number: int) -> None:
    """Make the hook's ``number``-th send request kill the try before it goes out."""
    calls = {"n": 0}
    real_post = hook.session.post

    def post(*args: Any, **kwargs: Any):
        calls["n"] += 1
        if calls["n"] == number:
            raise SystemExit("worker killed")
        return real_post(*args, **kwargs)

    monkeypatch.setattr(hook.session, "post", post)


def test_crash_then_retry_resends_nothing_that_may_have_been_accepted(sandbox, monkeypatch):
    """Try 1 dies as request 23 starts; its batch was written ahead, so try 2 reports it UNCONFIRMED."""
    store = FakeStateStore()
    first = SendSmsOperator(task_id="send", messages=MESSAGES)
    _die_on_request(monkeypatch, first.hook, 23)
    with pytest.raises(SystemExit):
        first.execute(make_context(store=store))
    accepted_by_first = len(sandbox.accepted)
    assert 0 < accepted_by_first < N

    retry = SendSmsOperator(task_id="send", messages=MESSAGES, allowed_failures=BATCH)
    result = retry.execute(make_context(store=store))
    figures = check("crash, then task retry", "try 1 dies at request 23", sandbox, SendReport.from_dict(result))
    assert figures["duplicated"] == 0
    assert figures["unconfirmed"] == BATCH
    assert figures["accepted"] == N - BATCH

    deliberate = SendSmsOperator(task_id="send", messages=MESSAGES, resend_unconfirmed=True)
    result = deliberate.execute(make_context(store=store))
    figures = check(
        "... then resend_unconfirmed=True",
        "the 100 never reached CommPeak",
        sandbox,
        SendReport.from_dict(result),
    )
    assert figures["accepted"] == N
    assert figures["duplicated"] == 0
    assert result["message_uuids"] == [
        m["message_uuid"] for m in sorted(sandbox.accepted, key=lambda m: int(m["internal_id"][1:]))
    ]
