"""The ledger: what earlier tries settled, written ahead and recorded before anything can interrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from airflow_provider_commpeak._engine.ledger import INDEX_KEY, SendLedger
from airflow_provider_commpeak._engine.report import UNCONFIRMED, MessageResult
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.sandbox import CommPeakSandbox
from helpers import message, poll
from helpers.fakes import FakeStateStore, FileStateStore

MESSAGES = [message(i) for i in range(2000)]


def test_settled_holds_accepted_unconfirmed_and_uuid_refusals_not_pushed_back_ones():
    store = FakeStateStore()
    ledger = SendLedger(store)
    number = ledger.begin(["a", "b", "c", "d", "e"])
    ledger.finish(
        number,
        [
            MessageResult("a", "u-a", None),
            MessageResult("b", None, UNCONFIRMED),
            MessageResult("c", "u-c", "ODD"),
            MessageResult("d", None, "INVALID_RECIPIENT"),
        ],
    )
    settled = SendLedger(store).settled()
    assert settled == {
        "a": MessageResult("a", "u-a", None),
        "b": MessageResult("b", None, UNCONFIRMED),
        "c": MessageResult("c", "u-c", "ODD"),
    }
    assert set(SendLedger(store, resend_unconfirmed=True).settled()) == {"a", "c"}


def test_a_batch_written_ahead_but_never_answered_is_unconfirmed_on_retry():
    store = FakeStateStore()
    SendLedger(store).begin(["x", "y"])  # the try died before the answer was recorded
    assert SendLedger(store).settled() == {
        "x": MessageResult("x", None, UNCONFIRMED),
        "y": MessageResult("y", None, UNCONFIRMED),
    }


def test_a_later_acceptance_wins_over_an_earlier_unconfirmed():
    store = FakeStateStore()
    first = SendLedger(store)
    first.begin(["x"])
    second = SendLedger(store, resend_unconfirmed=True)
    second.finish(second.begin(["x"]), [MessageResult("x", "u-x", None)])
    assert SendLedger(store).settled()["x"] == MessageResult("x", "u-x", None)


def test_the_index_is_written_once_per_64_batches():
    store = FakeStateStore()
    writes = Counter()
    original = store.set

    def counting(key, value, **kwargs):
        writes[key == INDEX_KEY] += 1
        original(key, value, **kwargs)

    store.set = counting
    ledger = SendLedger(store)
    for _ in range(100):
        ledger.finish(ledger.begin(["i"]), [])
    assert writes[True] == 2
    assert store.get(INDEX_KEY) == 128
    assert writes[False] == 200


def test_records_written_by_version_1_are_read():
    store = FakeStateStore()
    store.set(INDEX_KEY, 1)
    store.set("commpeak_send.batch.0", {"task_ids": ["t"], "accepted": {"a": "u-a"}, "unconfirmed": ["b"]})
    assert SendLedger(store).settled() == {
        "a": MessageResult("a", "u-a", None),
        "b": MessageResult("b", None, UNCONFIRMED),
    }


def test_no_store_records_nothing():
    ledger = SendLedger(None)
    assert not ledger.durable
    assert ledger.begin(["a"]) is None
    assert ledger.settled() == {}


def _retry(sandbox: CommPeakSandbox, store) -> dict:
    report = CommPeakHook().send_messages(MESSAGES, ledger=SendLedger(store))
    times = Counter(m["internal_id"] for m in sandbox.accepted)
    return {"report": report, "duplicated": sum(n - 1 for n in times.values()), "accepted": len(times)}


@pytest.mark.sandbox
def test_a_task_timeout_mid_send_loses_no_acknowledgement(monkeypatch):
    """SIGALRM raises in the main thread while batches are in flight, as execution_timeout does."""
    store = FakeStateStore()
    with CommPeakSandbox(latency_ms=150) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sb.connection_json)

        def timeout(signum, frame):
            raise TimeoutError("execution_timeout")

        previous = signal.signal(signal.SIGALRM, timeout)
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        try:
            with pytest.raises(TimeoutError):
                CommPeakHook().send_messages(MESSAGES, batch_size=50, ledger=SendLedger(store))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        accepted_by_first = {m["internal_id"] for m in sb.accepted}
        assert 0 < len(accepted_by_first) < len(MESSAGES)
        assert accepted_by_first <= set(SendLedger(store).settled()), "an acceptance the ledger lost"
        outcome = _retry(sb, store)
        assert outcome["duplicated"] == 0
        assert outcome["accepted"] == len(MESSAGES)
        assert outcome["report"].accepted == len(MESSAGES)


CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from helpers import message
    from helpers.fakes import FileStateStore
    from airflow_provider_commpeak._engine.ledger import SendLedger
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
    CommPeakHook().send_messages([message(i) for i in range(2000)], batch_size=50,
                                 ledger=SendLedger(FileStateStore({store!r})))
    """
)


@pytest.mark.sandbox
def test_a_worker_killed_mid_send_never_causes_a_duplicate(tmp_path, monkeypatch):
    """SIGKILL between "the API accepted" and "recorded": written-ahead batches come back UNCONFIRMED."""
    folder = tmp_path / "store"
    with CommPeakSandbox(latency_ms=100) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sb.connection_json)
        env = dict(os.environ)
        script = CHILD.format(tests=os.path.dirname(__file__), store=str(folder))
        child = subprocess.Popen([sys.executable, "-c", script], env=env)
        try:
            poll("the child to get 300 messages accepted", lambda: len(sb.accepted) >= 300, timeout=120)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        accepted_by_first = {m["internal_id"] for m in sb.accepted}
        settled = SendLedger(FileStateStore(folder)).settled()
        assert accepted_by_first <= set(settled), "an acceptance neither recorded nor written ahead"
        unconfirmed = [i for i, r in settled.items() if r.error == UNCONFIRMED]
        assert len(unconfirmed) <= 4 * 50  # at most the batches in flight when the worker died
        report = CommPeakHook().send_messages(MESSAGES, ledger=SendLedger(FileStateStore(folder)))
        times = Counter(m["internal_id"] for m in sb.accepted)
        assert max(times.values()) == 1, "a message was accepted twice"
        assert report.accepted + len(unconfirmed) == len(MESSAGES)
        assert report.errors_by_kind() == ({UNCONFIRMED: len(unconfirmed)} if unconfirmed else {})
        print(json.dumps({"unconfirmed_after_sigkill": len(unconfirmed)}))
