"""The ledger: what earlier tries settled, written ahead and recorded before anything can interrupt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from airflow_provider_commpeak._engine.ledger import BATCH_KEY, INDEX_KEY, LedgerCorrupt, SendLedger
from airflow_provider_commpeak._engine.ledger_stores import (
    LEDGER_RETENTION,
    TaskStateLedgerStore,
    ledger_path_store,
    store_for,
)
from airflow_provider_commpeak._engine.report import UNCONFIRMED, MessageResult
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.sandbox import CommPeakSandbox
from helpers import SEND_URL, accepted_answer, message, poll
from helpers.fakes import FakeStateStore, FileStateStore

MESSAGES = [message(i) for i in range(2000)]


def results(ledger: SendLedger) -> dict[str, MessageResult]:
    """What ``settled()`` holds for every id the ledger names."""
    index = ledger.settled()
    found = {}
    for result, _ in ledger.records():
        earlier = index.get(result.internal_id)
        if earlier is not None:
            found[result.internal_id] = earlier.result
    return found


def begin(ledger: SendLedger, ids: list[str]) -> list[int] | None:
    return ledger.begin((i, f"fp-{i}") for i in ids)


def finish(ledger: SendLedger, numbers, settled: list[MessageResult]) -> None:
    ledger.finish(numbers, [(r, f"fp-{r.internal_id}") for r in settled])


def test_settled_holds_accepted_unconfirmed_and_uuid_refusals_not_pushed_back_ones():
    store = FakeStateStore()
    ledger = SendLedger(store)
    numbers = begin(ledger, ["a", "b", "c", "d", "e"])
    finish(
        ledger,
        numbers,
        [
            MessageResult("a", "u-a", None),
            MessageResult("b", None, UNCONFIRMED),
            MessageResult("c", "u-c", "ODD"),
            MessageResult("d", None, "INVALID_RECIPIENT"),
        ],
    )
    assert results(SendLedger(store)) == {
        "a": MessageResult("a", "u-a", None),
        "b": MessageResult("b", None, UNCONFIRMED),
        "c": MessageResult("c", "u-c", "ODD"),
    }
    assert set(results(SendLedger(store, resend_unconfirmed=True))) == {"a", "c"}
    assert SendLedger(store).settled().get("a").fingerprint is None  # "fp-a" is not a fingerprint
    assert SendLedger(store).settled().get("zz") is None


def test_records_are_by_name_with_a_version_key():
    store = FakeStateStore()
    ledger = SendLedger(store)
    numbers = begin(ledger, ["a"])
    assert store.data[BATCH_KEY.format(numbers[0])] == {
        "v": 2,
        "state": "sending",
        "internal_id": ["a"],
        "fp": ["fp-a"],
    }
    finish(ledger, numbers, [MessageResult("a", "u-a", None, "t-1")])
    assert store.data[BATCH_KEY.format(numbers[0])] == {
        "v": 2,
        "state": "settled",
        "internal_id": ["a"],
        "message_uuid": ["u-a"],
        "error": [None],
        "task_id": ["t-1"],
        "fp": ["fp-a"],
    }
    assert SendLedger(store).settled().get("a").result == MessageResult("a", "u-a", None, "t-1")


def test_a_record_written_before_a_field_existed_reads_it_as_none():
    store = FakeStateStore()
    store.set(INDEX_KEY, 64)
    store.set(BATCH_KEY.format(0), {"v": 2, "state": "settled", "internal_id": ["a"], "message_uuid": ["u-a"]})
    assert results(SendLedger(store)) == {"a": MessageResult("a", "u-a", None, None)}


def test_a_batch_written_ahead_but_never_answered_is_unconfirmed_on_retry():
    store = FakeStateStore()
    begin(SendLedger(store), ["x", "y"])  # the try died before the answer was recorded
    assert results(SendLedger(store)) == {
        "x": MessageResult("x", None, UNCONFIRMED),
        "y": MessageResult("y", None, UNCONFIRMED),
    }


def test_a_later_acceptance_wins_over_an_earlier_unconfirmed():
    store = FakeStateStore()
    begin(SendLedger(store), ["x"])
    second = SendLedger(store, resend_unconfirmed=True)
    finish(second, begin(second, ["x"]), [MessageResult("x", "u-x", None)])
    assert results(SendLedger(store))["x"] == MessageResult("x", "u-x", None)


def test_the_index_is_written_once_per_64_records():
    store = FakeStateStore()
    writes = Counter()
    original = store.set

    def counting(key, value, **kwargs):
        writes[key == INDEX_KEY] += 1
        original(key, value, **kwargs)

    store.set = counting
    ledger = SendLedger(store)
    for _ in range(100):
        finish(ledger, begin(ledger, ["i"]), [])
    assert writes[True] == 2
    assert store.get(INDEX_KEY) == 128
    assert writes[False] == 200


@pytest.mark.parametrize("batch_size", [1000])
def test_no_stored_value_is_above_32_kb_at_any_batch_size(batch_size):
    store = FakeStateStore()
    ledger = SendLedger(store)
    ids = [f"af-{'a' * 16}-{i:024x}" for i in range(batch_size)] + ["x" * 128 for _ in range(0)]
    numbers = begin(ledger, ids)
    sizes = [len(json.dumps(v)) for v in store.data.values()]
    finish(ledger, numbers, [MessageResult(i, f"{n:08x}-0000-4000-8000-{n:012x}", None) for n, i in enumerate(ids)])
    sizes += [len(json.dumps(v)) for v in store.data.values()]
    assert max(sizes) <= 32_000
    assert set(results(SendLedger(store))) == set(ids)


def test_long_ids_are_split_over_more_records_and_all_read_back():
    store = FakeStateStore()
    ledger = SendLedger(store)
    ids = [f"{n:04d}" + "x" * 124 for n in range(1000)]
    finish(ledger, begin(ledger, ids), [MessageResult(i, f"uuid-{n}" * 5, None) for n, i in enumerate(ids)])
    assert max(len(json.dumps(v)) for v in store.data.values()) <= 32_000
    assert len(store.data) > 5
    assert {i for i, r in results(SendLedger(store)).items() if r.accepted} == set(ids)


def test_records_written_by_version_1_0_are_read():
    store = FakeStateStore()
    store.set(INDEX_KEY, 1)
    store.set("commpeak_send.batch.0", {"task_ids": ["t"], "accepted": {"a": "u-a"}, "unconfirmed": ["b"]})
    assert results(SendLedger(store)) == {
        "a": MessageResult("a", "u-a", None),
        "b": MessageResult("b", None, UNCONFIRMED),
    }


def test_records_written_by_version_1_1_are_read():
    """A fixture as 1.1.0 wrote it: positional rows; a RATE_LIMIT with a uuid is sent again now."""
    store = FakeStateStore()
    store.set(INDEX_KEY, 64)
    store.set(
        "commpeak_send.batch.0",
        {"settled": [["a", "u-a", None], ["b", None, "UNCONFIRMED"], ["c", "u-c", "RATE_LIMIT"]]},
    )
    store.set("commpeak_send.batch.1", {"sending": ["d"]})
    assert results(SendLedger(store)) == {
        "a": MessageResult("a", "u-a", None),
        "b": MessageResult("b", None, UNCONFIRMED),
        "d": MessageResult("d", None, UNCONFIRMED),
    }


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        (INDEX_KEY, "many", "expected a count"),
        ("commpeak_send.batch.0", ["a"], "expected an object"),
        (
            "commpeak_send.batch.0",
            {"v": 2, "state": "settled", "internal_id": ["a", "b"], "message_uuid": ["u"]},
            "zip",
        ),
        ("commpeak_send.batch.0", {"settled": [["a", "u"]]}, "not enough values"),
        ("commpeak_send.batch.0", {"v": 3, "state": "x"}, "newer than this provider reads"),
    ],
)
def test_a_corrupt_record_is_reported_with_where_and_how_to_clear_it(key, value, what):
    store = FakeStateStore()
    store.set(INDEX_KEY, 64)
    store.set(key, value)
    with pytest.raises(LedgerCorrupt) as info:
        SendLedger(store).settled()
    text = str(info.value)
    assert repr(key) in text
    assert what in text
    assert "task_state_store" in text
    assert "clear the task instance's task state" in text


def test_no_store_records_nothing():
    ledger = SendLedger(None)
    assert not ledger.durable
    assert begin(ledger, ["a"]) is None
    assert len(ledger.settled()) == 0


class OneAtATimeStore(FakeStateStore):
    """Like ``dag.test()``'s in-process supervisor: two calls at once break it."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = threading.Lock()
        self.calls = 0

    def _one(self) -> None:
        if not self.busy.acquire(blocking=False):
            raise ImportError("cannot import name 'SUPERVISOR_COMMS'")  # what Airflow 3.3.2 raises
        try:
            self.calls += 1
            time.sleep(0.001)
        finally:
            self.busy.release()

    def get(self, key, default=None):
        self._one()
        return super().get(key, default)

    def set(self, key, value, *, retention=None):
        self._one()
        self.retention = retention
        super().set(key, value)


def test_every_store_call_is_serialized_and_written_with_a_retention():
    store = OneAtATimeStore()
    ledger = SendLedger(store)

    def work(n: int) -> None:
        for i in range(25):
            finish(ledger, begin(ledger, [f"{n}-{i}"]), [MessageResult(f"{n}-{i}", f"u{n}-{i}", None)])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results(SendLedger(store))) == 200
    assert store.retention == LEDGER_RETENTION


WHERE = {"dag_id": "d", "run_id": "manual__2026-12-01T00:00:00+00:00", "task_id": "send", "map_index": 3}
RUN_FOLDER = Path("d") / "manual__2026-12-01T00%3A00%3A00%2B00%3A00" / "send"


@pytest.mark.parametrize("base", ["plain", "file_url"])
def test_a_local_ledger_path_is_one_append_only_log_per_task_instance(tmp_path, base):
    root = str(tmp_path) if base == "plain" else f"file://{tmp_path}"
    ledger = SendLedger(ledger_path_store(root, **WHERE))
    finish(ledger, begin(ledger, ["a", "b"]), [MessageResult("a", "u-a", None)])
    folder = tmp_path / RUN_FOLDER / "3"
    assert [p.name for p in folder.iterdir()] == ["ledger.log"]
    assert len((folder / "ledger.log").read_text().splitlines()) == 3  # the index, sending, settled
    assert results(SendLedger(ledger_path_store(root, **WHERE))) == {"a": MessageResult("a", "u-a", None)}
    assert results(SendLedger(ledger_path_store(root, **{**WHERE, "map_index": 4}))) == {}


def test_a_torn_last_line_is_never_relied_on_and_is_cut_before_the_next_append(tmp_path):
    store = ledger_path_store(str(tmp_path), **WHERE)
    ledger = SendLedger(store)
    numbers = begin(ledger, ["a"])
    store.close()
    log = tmp_path / RUN_FOLDER / "3" / "ledger.log"
    with log.open("a") as handle:  # a machine crash in the middle of writing the answer
        handle.write('commpeak_send.batch.0\t{"v":2,"state":"sett')
    assert results(SendLedger(ledger_path_store(str(tmp_path), **WHERE))) == {
        "a": MessageResult("a", None, UNCONFIRMED)
    }
    again = SendLedger(ledger_path_store(str(tmp_path), **WHERE))
    finish(again, numbers, [MessageResult("a", "u-a", None)])
    assert results(SendLedger(ledger_path_store(str(tmp_path), **WHERE))) == {"a": MessageResult("a", "u-a", None)}
    assert all(line.count("\t") == 1 for line in log.read_text().splitlines())


def test_a_damaged_log_is_reported_with_how_to_clear_it(tmp_path):
    ledger = SendLedger(ledger_path_store(str(tmp_path), **WHERE))
    finish(ledger, begin(ledger, ["a"]), [MessageResult("a", "u-a", None)])
    log = tmp_path / RUN_FOLDER / "3" / "ledger.log"
    head, _, tail = log.read_text().rpartition('"internal_id"')
    log.write_text(head + '"internal_id' + tail)  # the settled record, the one a retry relies on
    with pytest.raises(LedgerCorrupt, match=f"delete the folder {log.parent}"):
        SendLedger(ledger_path_store(str(tmp_path), **WHERE)).settled()


def test_object_storage_keeps_one_object_per_record():
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    root = "memory://commpeak-ledger-test/ledger"
    try:
        ObjectStoragePath(root).exists()
    except ValueError:
        pytest.skip("this Airflow's ObjectStoragePath has no memory:// filesystem (Airflow 2.11)")
    ledger = SendLedger(ledger_path_store(root, **WHERE))
    finish(ledger, begin(ledger, ["a", "b"]), [MessageResult("a", "u-a", None)])
    folder = ObjectStoragePath(root) / str(RUN_FOLDER) / "3"
    assert sorted(p.name for p in folder.iterdir()) == ["commpeak_send.batch.0.json", "commpeak_send.batches.json"]
    assert results(SendLedger(ledger_path_store(root, **WHERE))) == {"a": MessageResult("a", "u-a", None)}
    (folder / "commpeak_send.batch.0.json").write_text('{"v": 2, "state": "sett')
    with pytest.raises(LedgerCorrupt, match="delete the folder memory://"):
        SendLedger(ledger_path_store(root, **WHERE)).settled()


def test_the_ledger_path_option_is_read_from_the_provider_config(tmp_path, monkeypatch):
    from helpers.fakes import make_context

    monkeypatch.setenv("AIRFLOW__COMMPEAK__LEDGER_PATH", str(tmp_path / "from-config"))
    context = make_context(store=FakeStateStore())
    assert store_for(context).where.startswith(str(tmp_path / "from-config"))
    assert store_for(context, ledger_path=str(tmp_path / "arg")).where.startswith(str(tmp_path / "arg"))
    monkeypatch.delenv("AIRFLOW__COMMPEAK__LEDGER_PATH")
    assert isinstance(store_for(context), TaskStateLedgerStore)
    assert store_for(make_context()) is None


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
        assert accepted_by_first <= set(results(SendLedger(store))), "an acceptance the ledger lost"
        outcome = _retry(sb, store)
        assert outcome["duplicated"] == 0
        assert outcome["accepted"] == len(MESSAGES)
        assert outcome["report"].accepted == len(MESSAGES)


def test_a_signal_while_a_batch_is_in_flight_waits_for_its_answer(commpeak_conn, requests_mock):
    """
    The timeout reaches the task while one sender's batch is still with the API: the exception goes
    on only once that answer is recorded. (Python < 3.13 marks a thread whose ``join()`` a signal
    interrupted as finished while it still runs: https://github.com/python/cpython/issues/90882.)
    """
    store = FakeStateStore()
    answered = threading.Event()
    main_thread = threading.main_thread().ident

    def answer(request, context):
        if threading.current_thread().name == "commpeak-send-0" and not answered.is_set():
            signal.pthread_kill(main_thread, signal.SIGALRM)  # execution_timeout, while this batch is out
            threading.Timer(1.0, answered.set).start()  # the API answers a second later
            answered.wait(30)
        return accepted_answer(request, context)

    requests_mock.post(SEND_URL, json=answer)

    def timeout(signum, frame):
        raise TimeoutError("execution_timeout")

    previous = signal.signal(signal.SIGALRM, timeout)
    try:
        with pytest.raises(TimeoutError):
            CommPeakHook().send_messages(MESSAGES, batch_size=50, ledger=SendLedger(store))
        settled = results(SendLedger(store))
    finally:
        answered.set()
        signal.signal(signal.SIGALRM, previous)
    sent = {m["internal_id"] for r in requests_mock.request_history for m in r.json()["messages"]}
    assert sent
    assert sorted(settled) == sorted(sent)
    assert {r.error for r in settled.values()} == {None}, "a batch in flight was left written-ahead only"


CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from helpers import message
    from helpers.fakes import FileStateStore
    from airflow_provider_commpeak._engine.ledger import SendLedger
    from airflow_provider_commpeak._engine.ledger_stores import ledger_path_store
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
    CommPeakHook().send_messages([message(i) for i in range(2000)], batch_size=50,
                                 ledger=SendLedger({store}))
    """
)
STORES = {
    "task_state_store": "FileStateStore({folder!r})",
    "ledger_path": "ledger_path_store({folder!r}, dag_id='d', run_id='r', task_id='t', map_index=-1)",
}


def _store(kind: str, folder) -> object:
    """The parent's handle on the store the child wrote (the same expressions, in this process)."""
    if kind == "task_state_store":
        return FileStateStore(str(folder))
    return ledger_path_store(str(folder), dag_id="d", run_id="r", task_id="t", map_index=-1)


@pytest.mark.sandbox
@pytest.mark.parametrize("kind", sorted(STORES))
def test_a_worker_killed_mid_send_never_causes_a_duplicate(tmp_path, monkeypatch, kind):
    """SIGKILL between "the API accepted" and "recorded": written-ahead batches come back UNCONFIRMED."""
    folder = tmp_path / "store"
    with CommPeakSandbox(latency_ms=100) as sb:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sb.connection_json)
        env = dict(os.environ)
        script = CHILD.format(tests=os.path.dirname(__file__), store=STORES[kind].format(folder=str(folder)))
        child = subprocess.Popen([sys.executable, "-c", script], env=env)
        try:
            poll("the child to get 300 messages accepted", lambda: len(sb.accepted) >= 300, timeout=120)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        accepted_by_first = {m["internal_id"] for m in sb.accepted}
        settled = results(SendLedger(_store(kind, folder)))
        assert accepted_by_first <= set(settled), "an acceptance neither recorded nor written ahead"
        unconfirmed = [i for i, r in settled.items() if r.error == UNCONFIRMED]
        assert len(unconfirmed) <= 4 * 50  # at most the batches in flight when the worker died
        report = CommPeakHook().send_messages(MESSAGES, ledger=SendLedger(_store(kind, folder)))
        times = Counter(m["internal_id"] for m in sb.accepted)
        assert max(times.values()) == 1, "a message was accepted twice"
        assert report.accepted + len(unconfirmed) == len(MESSAGES)
        assert report.errors_by_kind() == ({UNCONFIRMED: len(unconfirmed)} if unconfirmed else {})
        print(json.dumps({"unconfirmed_after_sigkill": len(unconfirmed)}))


@pytest.mark.parametrize("text", ["\u00e9" * 120, "\U0001f600" * 60, '\n\t"\\' * 30])
def test_records_of_ids_that_json_escapes_stay_under_the_bound(text):
    store = FakeStateStore()
    ledger = SendLedger(store)
    ids = [f"{n:04d}{text}"[:128] for n in range(1000)]
    finish(ledger, begin(ledger, ids), [MessageResult(i, "0562f2aa-0000-4000-8000-000000000000", None) for i in ids])
    assert max(len(json.dumps(v)) for v in store.data.values()) <= 32_000
    assert set(results(SendLedger(store))) == set(ids)


def test_the_settled_index_keeps_a_million_results_compactly_and_exactly():
    from airflow_provider_commpeak._engine.settled import SettledIndex

    index = SettledIndex()
    canonical = "0562f2aa-0000-4000-8000-{:012x}"
    for n in range(200_000):
        error = None if n % 7 else ("UNCONFIRMED" if n % 2 else "QUEUED")
        uuid = None if error == "UNCONFIRMED" else (canonical.format(n) if n % 5 else f"U-{n}")
        index.add(MessageResult(f"id-{n}", uuid, error), f"{n:08x}")
    index.add(MessageResult("id-7", "0562f2aa-0000-4000-8000-000000000007", None), None)  # a later acceptance
    index.add(MessageResult("id-1", None, "UNCONFIRMED"), None)  # after an acceptance: ignored
    assert len(index) == 200_000
    assert index.get("id-1") == (MessageResult("id-1", canonical.format(1), None), "00000001")
    assert index.get("id-5") == (MessageResult("id-5", "U-5", None), "00000005")
    assert index.get("id-7").result == MessageResult("id-7", "0562f2aa-0000-4000-8000-000000000007", None)
    assert index.get("id-14") == (
        MessageResult("id-14", "U-14" if False else canonical.format(14), "QUEUED"),
        "0000000e",
    )
    assert index.get("id-200000") is None
    for n in range(0, 200_000, 997):
        assert index.get(f"id-{n}").result.internal_id == f"id-{n}"


def test_more_than_254_distinct_error_codes_are_kept():
    from airflow_provider_commpeak._engine.settled import SettledIndex

    index = SettledIndex()
    for n in range(300):
        index.add(MessageResult(f"m{n}", f"u{n}", f"CODE_{n}"), None)
    assert [index.get(f"m{n}").result.error for n in (0, 253, 254, 299)] == [
        "CODE_0",
        "CODE_253",
        "CODE_254",
        "CODE_299",
    ]
