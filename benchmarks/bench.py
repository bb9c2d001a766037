"""
``make bench``: CommPeakHook against what users would write instead, side by side, in one run.

Starts the sandbox in its own process with a per-request latency (default 20 ms) and runs each
approach in a fresh child process (so peak RSS is its own):

- ``naive``: one ``requests.post`` per message (timed on a slice, extrapolated to N);
- ``httphook``: ``apache-airflow-providers-http``'s ``HttpHook.run`` posting each batch;
- ``commpeak``: ``CommPeakHook.send_messages`` (batches, ``max_concurrency``).

For each it prints wall time, messages/s, requests, peak RSS and the ratio to the limit, where the
limit is ``requests x latency / concurrency`` (or ``N / rate`` when the rate limit binds). Then a
rate-limited run, the sensor's requests per poke as 100,000 messages settle, streaming memory
(10,000 vs 1,000,000 messages from a JSON Lines file) and parse-time import cost.

Run ``python benchmarks/bench.py --help`` for the knobs; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

API_KEY = "bench-key"
HERE = Path(__file__).resolve().parent


# -- the sandbox in its own process --------------------------------------------------------------


def sandbox_call(url: str, path: str, body: Any = None) -> Any:
    """One JSON request to a sandbox (an API path or a ``/_sandbox/`` control path)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{url}{path}", data=data, headers={"Authorization": API_KEY, "Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


class Sandbox:
    def __init__(
        self,
        *,
        latency_ms: float,
        rate_limit: float,
        delivery_delay: float,
        max_in_flight: int = 0,
        status_rate_limit: float = 0,
    ) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow_provider_commpeak.sandbox",
                "--port",
                "0",
                "--api-key",
                API_KEY,
                "--latency-ms",
                str(latency_ms),
                "--rate-limit",
                str(rate_limit),
                "--delivery-delay",
                str(delivery_delay),
                "--max-in-flight",
                str(max_in_flight),
                "--status-rate-limit",
                str(status_rate_limit),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        first = self.process.stdout.readline()
        if "listening on" not in first:
            raise RuntimeError(f"the sandbox did not start: {first!r}")
        self.url = first.split("listening on ")[1].split()[0]

    def call(self, path: str, body: Any = None) -> Any:
        return sandbox_call(self.url, path, body)

    def stats(self) -> dict[str, Any]:
        return self.call("/_sandbox/stats")

    def reset(self) -> None:
        self.call("/_sandbox/reset", {})

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


# -- workers: each runs in a fresh process and prints one JSON line ------------------------------


def messages(n: int, start: int = 0):
    for i in range(start, start + n):
        yield {
            "internal_id": f"b{i}",
            "sender": "BENCH",
            "recipient_phone": f"4477009{i % 100000:05d}",
            "message_content": f"Benchmark message {i}",
        }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (``VmRSS``, ``VmHWM``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def worker_naive(url: str, n: int) -> dict[str, Any]:
    import requests

    started = time.perf_counter()
    for message in messages(n):
        requests.post(
            f"{url}/simple_send/",
            json={"messages": [message]},
            headers={"Authorization": API_KEY},
            timeout=30,
        )
    return {"wall": time.perf_counter() - started, "rss": peak_rss_mb()}


def worker_httphook(url: str, n: int, batch: int) -> dict[str, Any]:
    from airflow.providers.http.hooks.http import HttpHook

    os.environ["AIRFLOW_CONN_BENCH_HTTP"] = json.dumps({"conn_type": "http", "host": url})
    hook = HttpHook(method="POST", http_conn_id="bench_http")
    started = time.perf_counter()
    chunk: list[dict[str, str]] = []
    for message in messages(n):
        chunk.append(message)
        if len(chunk) == batch:
            hook.run("/simple_send/", json={"messages": chunk}, headers={"Authorization": API_KEY})
            chunk = []
    if chunk:
        hook.run("/simple_send/", json={"messages": chunk}, headers={"Authorization": API_KEY})
    return {"wall": time.perf_counter() - started, "rss": peak_rss_mb()}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker_commpeak(
    url: str,
    n: int,
    batch: int,
    concurrency: int,
    source: str | None = None,
    start: int = 0,
    max_rate: float | None = None,
) -> dict[str, Any]:
    """Send ``n`` messages with the hook's defaults; time each request (the round trips) and the CPU."""
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

    os.environ["AIRFLOW_CONN_COMMPEAK_DEFAULT"] = json.dumps(
        {"conn_type": "commpeak", "password": API_KEY, "host": url}
    )
    hook = CommPeakHook(max_rate=max_rate)
    hook.get_conn()  # read the connection first: a one-time set-up, not throughput
    round_trips: list[float] = []
    request = hook.transport.request

    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return request(*args, **kwargs)
        finally:
            round_trips.append(time.perf_counter() - began)

    hook.transport.request = timed  # type: ignore[method-assign]
    cpu_before, started = cpu_seconds(), time.perf_counter()
    if source:
        report_path = Path(tempfile.mkdtemp()) / "report.jsonl"
        report = hook.send_messages(source, report_path=str(report_path), batch_size=batch, max_concurrency=concurrency)
    else:
        report = hook.send_messages(list(messages(n, start)), batch_size=batch, max_concurrency=concurrency)
    return {
        "wall": time.perf_counter() - started,
        "cpu": cpu_seconds() - cpu_before,
        "rtt": statistics.mean(round_trips) if round_trips else 0.0,
        "rss": peak_rss_mb(),
        "accepted": report.accepted,
        "failed": report.failed,
    }


def worker_polling(url: str, uuids_file: str, chunk: int, interval: float, first_sent: float) -> dict[str, Any]:
    """Poke like the sensor until every message is final; count requests per poke on the sandbox."""
    from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

    os.environ["AIRFLOW_CONN_COMMPEAK_DEFAULT"] = json.dumps(
        {"conn_type": "commpeak", "password": API_KEY, "host": url}
    )
    uuids = json.loads(Path(uuids_file).read_text())
    sensor = SmsStatusSensor(task_id="wait", message_uuids=uuids, status_batch_size=chunk, deferrable=False)
    pokes = []
    settle_started = False

    def status_requests() -> int:
        return sandbox_call(url, "/_sandbox/stats")["requests"].get("/messages_status/", 0)

    while True:
        before = status_requests()
        pending = len(sensor._tracker.pending) if sensor._tracker is not None else len(uuids)
        done = sensor.poke({}).is_done
        after = status_requests()
        pokes.append({"pending": pending, "requests": after - before, "expected": math.ceil(pending / chunk)})
        if done:
            return {"pokes": pokes}
        if not settle_started:  # from now on, one slice settles every `interval` seconds
            sandbox_call(url, "/_sandbox/settings", {"delivery_delay": time.time() - first_sent})
            settle_started = True
        time.sleep(interval)


def worker_status_poll(url: str, requests: int, paced: bool) -> dict[str, Any]:
    """
    One long status poll of ``requests`` requests (one uuid each): the hook's paced ``get_statuses``,
    or 1.4.0's unpaced loop (each request retried on its own with the policy's backoff).
    """
    from airflow_provider_commpeak._engine.connection import STATUS_PATH
    from airflow_provider_commpeak._engine.poll_pacer import is_pushback
    from airflow_provider_commpeak._engine.tracking import chunked
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

    os.environ["AIRFLOW_CONN_COMMPEAK_DEFAULT"] = json.dumps(
        {"conn_type": "commpeak", "password": API_KEY, "host": url}
    )
    hook = CommPeakHook()
    uuids = [f"uuid-{i}" for i in range(requests)]
    started = time.monotonic()
    if paced:
        read = len(hook.get_statuses(uuids, batch_size=1))
    else:
        read = 0
        for chunk in chunked(uuids, 1):
            for attempt in range(1, hook.max_retries + 2):  # 1.4.0: each 429 waits the policy's backoff
                answer = hook.transport.request(STATUS_PATH, {"message_uuids": chunk}, retry_unknown=True)
                if not is_pushback(answer) or attempt > hook.max_retries:
                    break
                time.sleep(hook.retry_policy.delay(attempt, answer.retry_after))
            read += len(hook._statuses_from(answer, chunk))
    return {"seconds": time.monotonic() - started, "read": read}


def worker_trigger(url: str, report_path: str, status_path: str) -> dict[str, Any]:
    """The deferrable sensor's trigger over a report of many messages, then execute_complete."""
    import asyncio

    from airflow_provider_commpeak.sensors.commpeak import SmsStatusSensor

    os.environ["AIRFLOW_CONN_COMMPEAK_DEFAULT"] = json.dumps(
        {"conn_type": "commpeak", "password": API_KEY, "host": url}
    )
    from airflow_provider_commpeak.triggers.commpeak import SmsStatusTrigger

    polls: list[int] = []
    real = SmsStatusTrigger._poll

    async def counted(self: Any, hook: Any, tracker: Any) -> Any:
        polls.append(len(tracker.pending))
        return await real(self, hook, tracker)

    SmsStatusTrigger._poll = counted  # type: ignore[method-assign]
    sensor = SmsStatusSensor(
        task_id="wait",
        message_uuids={"report_path": report_path},
        poke_interval=1.0,
        deferrable=True,
        status_report_path=status_path,
        timeout=3600,
    )
    trigger = SmsStatusTrigger(
        commpeak_conn_id="commpeak_default",
        success_statuses=["delivered"],
        failure_statuses=["sent_failed", "undelivered", "no_routes", "rejected"],
        allowed_failures=0,
        poll_interval=1.0,
        end_time=time.time() + 3600,
        report_path=report_path,
    )
    kwargs_bytes = len(json.dumps(trigger.serialize()[1]))

    async def first_event() -> Any:
        async for event in trigger.run():
            return event.payload

    baseline = proc_status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    started = time.perf_counter()
    payload = asyncio.run(first_event())
    trigger_wall, trigger_rss = time.perf_counter() - started, proc_status_mb("VmHWM")
    xcom = sensor.execute_complete({}, payload)
    return {
        "kwargs_bytes": kwargs_bytes,
        "event_bytes": len(json.dumps(payload)),
        "xcom_bytes": len(json.dumps(xcom)),
        "polls": polls,
        "trigger_wall": trigger_wall,
        "trigger_rss": trigger_rss,
        "trigger_baseline_rss": baseline,
        "status": payload["status"],
    }


def worker_dry_run(path: str) -> dict[str, Any]:
    """A dry run over a JSON Lines file: counts, no request, no connection."""
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

    started = time.perf_counter()
    report = CommPeakHook().dry_run(path)
    return {
        "wall": time.perf_counter() - started,
        "rss": peak_rss_mb(),
        "messages": report.messages,
        "segments": report.segments,
    }


def worker_suppressed_dry_run(audience: str, suppression: str) -> dict[str, Any]:
    """A dry run of an audience against a suppression list: time, peak memory, how many are suppressed."""
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook, Safeguards

    started = time.perf_counter()
    report = CommPeakHook().dry_run(audience, safeguards=Safeguards.build(suppression_path=suppression))
    return {"wall": time.perf_counter() - started, "rss": peak_rss_mb(), "suppressed": report.suppressed}


def concurrency_cap(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    An API (or an edge proxy) that serves 2 requests at a time and answers a bare 429 to a third,
    against no cap, at the same rate limit and default settings (4 in flight): the throughput lost.
    """
    rows = []
    for rate in args.cap_rates:
        n = int(rate * args.cap_seconds)
        results = {}
        for cap in (0, 2):
            sandbox = Sandbox(latency_ms=args.latency_ms, rate_limit=rate, delivery_delay=1, max_in_flight=cap)
            try:
                run_worker("commpeak", sandbox.url, str(n), str(args.batch_size), str(args.concurrency))
                stats = sandbox.stats()
            finally:
                sandbox.stop()
            span = stats["last_accepted_at"] - stats["first_accepted_at"]
            results[cap] = (max(n - int(rate), 0) / max(span, 1e-9), stats)
        throughput = results[2][0] / results[0][0]
        rows.append(
            {
                "rate_limit": f"{rate:g}",
                "N": n,
                "msg_s_no_cap": f"{results[0][0]:,.0f}",
                "msg_s_cap_2": f"{results[2][0]:,.0f}",
                "cap_vs_no_cap": f"{throughput:.1%}",
                "bare_429s": results[2][1]["over_capacity"],
                "lost": n - results[2][1]["distinct_internal_ids"],
                "duplicated": results[2][1]["duplicated"],
                "_cost": 1 - throughput,
            }
        )
    return rows


def status_pacing(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    A long status poll against a limit on status requests with no burst (nginx ``limit_req``: one
    request every 1/limit seconds, a bare 429 to one sooner): paced (1.5.0) vs 1.4.0's unpaced
    retries, as requests served per second, a share of the limit. The unpaced run is shorter (it is slow).
    """
    rows = []
    for limit in args.status_limits:
        for label, paced, n in (
            ("paced", True, args.status_requests),
            ("unpaced (1.4.0)", False, args.status_requests // 5),
        ):
            sandbox = Sandbox(latency_ms=5, rate_limit=0, delivery_delay=1, status_rate_limit=limit)
            try:
                result = run_worker("status-poll", sandbox.url, str(n), "1" if paced else "0")
                stats = sandbox.stats()
            finally:
                sandbox.stop()
            served = n / result["seconds"]
            rows.append(
                {
                    "limit_req_s": f"{limit:g}",
                    "poll": label,
                    "requests": n,
                    "seconds": f"{result['seconds']:.1f}",
                    "served_req_s": f"{served:.1f}",
                    "share_of_limit": f"{served / limit:.0%}",
                    "429s": stats["status_refused"],
                    "read": result["read"],
                    "_share": served / limit,
                    "_paced": paced,
                    "_lost": n - result["read"],
                }
            )
    return rows


def pushback_cost(args: argparse.Namespace) -> list[dict[str, Any]]:
    """A send with and without a burst of bare 429s (no Retry-After), side by side: the extra wall time."""
    sandbox = Sandbox(latency_ms=20, rate_limit=0, delivery_delay=1)
    rows = []
    try:
        for label, faults in (
            ("no pushback", []),
            (
                "8 x 429 without Retry-After",
                [{"mode": "429", "count": 8, "after": 2, "retry_after": 0, "path": "/simple_send/"}],
            ),
        ):
            walls = []
            for _ in range(args.pushback_repeats):
                sandbox.reset()
                if faults:
                    sandbox.call("/_sandbox/faults", {"faults": faults})
                result = run_worker("commpeak", sandbox.url, str(args.pushback_n), "100", "4")
                assert result["accepted"] == args.pushback_n, result
                walls.append(result["wall"])
            rows.append(
                {
                    "scenario": label,
                    "N": args.pushback_n,
                    "wall_s": f"{statistics.median(walls):.2f}",
                    "_wall": statistics.median(walls),
                }
            )
    finally:
        sandbox.stop()
    for row in rows:
        row["extra_s"] = f"{row['_wall'] - rows[0]['_wall']:.2f}"
    return rows


def suppression_lists(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The same audience against suppression lists of growing size: peak memory must not follow the list."""
    folder = Path(tempfile.mkdtemp())
    audience = folder / "audience.jsonl"
    with audience.open("w") as out:
        for message in messages(args.suppression_audience):
            out.write(json.dumps(message) + "\n")
    rows = []
    for n in args.suppression_sizes:
        path = folder / f"optouts-{n}.txt"
        with path.open("w") as out:  # every tenth audience number, then numbers the audience never has
            out.writelines(f"+4477009{i:05d}\n" for i in range(0, min(n, args.suppression_audience), 10))
            out.writelines(
                f"+1202{i % 10_000_000:07d}\n" for i in range(n - len(range(0, min(n, args.suppression_audience), 10)))
            )
        result = run_worker("suppressed-dry-run", str(audience), str(path))
        path.unlink()
        rows.append(
            {
                "list_numbers": n,
                "wall_s": f"{result['wall']:.1f}",
                "peak_rss_mb": f"{result['rss']:.0f}",
                "_rss": result["rss"],
                "suppressed": result["suppressed"],
            }
        )
    audience.unlink()
    for row in rows:
        row["rss_vs_smallest"] = f"{row['_rss'] / rows[0]['_rss']:.2f}x"
    return rows


def worker_phones(n: int) -> dict[str, Any]:
    """Seconds to normalise n numbers: the cached fast path vs a libphonenumber parse each."""
    import phonenumbers

    from airflow_provider_commpeak._input.phones import normalize_phone

    clean = [f"4477009{i % 100000:05d}" for i in range(n)]
    formatted = [f"+44 7700 9{i % 100000:05d}" for i in range(n)]
    normalize_phone(clean[0])  # load the metadata once, as any first call does
    timings = {}
    for name, numbers in (("clean", clean), ("formatted", formatted)):
        started = time.perf_counter()
        for number in numbers:
            normalize_phone(number)
        timings[name] = time.perf_counter() - started
    sample = min(n, 50_000)
    started = time.perf_counter()
    for number in formatted[:sample]:
        parsed = phonenumbers.parse(number)
        phonenumbers.is_possible_number_with_reason(parsed)
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    timings["parse_each"] = (time.perf_counter() - started) * n / sample
    return timings


class _MemoryStateStore:
    """``task_state_store``'s interface in memory, JSON-copied like the real one (its transport not included)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.data[key]) if key in self.data else default

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.data[key] = json.dumps(value)


def _ledger_store(kind: str, folder: str) -> Any:
    from airflow_provider_commpeak._engine.ledger_stores import ledger_path_store

    if kind == "none":
        return None
    if kind == "task_state_store":
        return _MemoryStateStore()
    return ledger_path_store(folder, dag_id="bench", run_id="run", task_id="send", map_index=-1)


def worker_ledger_send(url: str, n: int, kind: str, folder: str) -> dict[str, Any]:
    """Send ``n`` messages with the hook's defaults and one ledger store; client CPU and wall."""
    from airflow_provider_commpeak._engine.ledger import SendLedger
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

    os.environ["AIRFLOW_CONN_COMMPEAK_DEFAULT"] = json.dumps(
        {"conn_type": "commpeak", "password": API_KEY, "host": url}
    )
    hook = CommPeakHook()
    hook.get_conn()
    batch = list(messages(n))
    ledger = SendLedger(_ledger_store(kind, folder))
    cpu_before, started = cpu_seconds(), time.perf_counter()
    report = hook.send_messages(batch, ledger=ledger)
    return {"wall": time.perf_counter() - started, "cpu": cpu_seconds() - cpu_before, "accepted": report.accepted}


def worker_ledger_write(folder: str, n: int, batch: int) -> dict[str, Any]:
    """Write the ledger of an ``n``-message send (every batch accepted) to a folder, as the engine does."""
    from airflow_provider_commpeak._engine.ledger import SendLedger, fingerprint
    from airflow_provider_commpeak._engine.report import MessageResult

    ledger = SendLedger(_ledger_store("ledger_path", folder))
    for start in range(0, n, batch):
        ids = [f"af-0123456789abcdef-{i:024x}" for i in range(start, min(start + batch, n))]
        fp = fingerprint("447700900000", "BENCH", "text")
        numbers = ledger.begin((i, fp) for i in ids)
        task_id = f"{start:08x}-1111-4000-8000-{start:012x}"  # CommPeak's id of the batch's request
        ledger.finish(
            numbers,
            [(MessageResult(i, f"{k:08x}-0000-4000-8000-{k:012x}", None, task_id), fp) for k, i in enumerate(ids)],
        )
    [log] = Path(folder).rglob("ledger.log")
    with log.open("rb") as handle:
        lines = [len(line) for line in handle]
    return {"records": len(lines), "largest": max(lines), "log_mb": log.stat().st_size / 2**20}


def worker_ledger_read(folder: str) -> dict[str, Any]:
    """What a retry does first: read the whole ledger back (fresh process: time and peak RSS)."""
    from airflow_provider_commpeak._engine.ledger import SendLedger

    rss_before = peak_rss_mb()
    started = time.perf_counter()
    settled = SendLedger(_ledger_store("ledger_path", folder)).settled()
    return {
        "wall": time.perf_counter() - started,
        "rss": peak_rss_mb(),
        "rss_before": rss_before,
        "settled": len(settled),
    }


def ledger_costs(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each store's cost on a send, side by side in one run; and a retry reading a big ledger."""
    sends = []
    sandbox = Sandbox(latency_ms=0, rate_limit=0, delivery_delay=1)
    try:
        for kind in ("none", "task_state_store", "ledger_path"):
            sandbox.reset()
            folder = tempfile.mkdtemp(prefix="commpeak-ledger-")
            result = run_worker("ledger-send", sandbox.url, str(args.ledger_n), kind, folder)
            assert result["accepted"] == args.ledger_n, result
            sends.append({"store": kind, "_cpu": result["cpu"], "_wall": result["wall"]})
    finally:
        sandbox.stop()
    base = sends[0]
    for row in sends:
        row.update(
            N=f"{args.ledger_n:,}",
            cpu_ms_per_1000=f"{row['_cpu'] * 1000 / args.ledger_n * 1000:.1f}",
            wall_ms_per_1000=f"{row['_wall'] * 1000 / args.ledger_n * 1000:.1f}",
            added_cpu_ms_per_1000=f"{(row['_cpu'] - base['_cpu']) * 1000 / args.ledger_n * 1000:+.1f}",
        )
    reads = []
    for n in args.ledger_read_sizes:
        folder = tempfile.mkdtemp(prefix="commpeak-ledger-")
        written = run_worker("ledger-write", folder, str(n), "1000")
        read = run_worker("ledger-read", folder)
        assert read["settled"] == n, read
        reads.append(
            {
                "N": f"{n:,}",
                "records": f"{written['records']:,}",
                "log_mb": f"{written['log_mb']:.0f}",
                "largest_record_bytes": f"{written['largest']:,}",
                "read_s": f"{read['wall']:.2f}",
                "peak_rss_mb": f"{read['rss']:.0f}",
                "_rss": read["rss"],
                "_largest": written["largest"],
                "_read": read["wall"],
            }
        )
    for row in reads:
        row["rss_vs_smallest"] = f"{row['_rss'] / reads[0]['_rss']:.2f}x"
    return sends, reads


def worker_import(module: str) -> dict[str, Any]:
    started = time.perf_counter()
    __import__(module)
    return {"seconds": time.perf_counter() - started}


@contextlib.contextmanager
def scratch_space() -> Iterator[None]:
    """Every temporary file of the run, its workers' included, in one folder removed at the end (up to GBs)."""
    with tempfile.TemporaryDirectory(prefix="commpeak-bench-") as folder:
        os.environ["TMPDIR"] = tempfile.tempdir = folder
        yield


def run_worker(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the benchmark ------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def throughput(args: argparse.Namespace, sandbox: Sandbox) -> list[dict[str, Any]]:
    latency = args.latency_ms / 1000
    rows = []
    for n in args.sizes:
        batches = math.ceil(n / args.batch_size)
        slice_n = min(n, args.naive_slice)
        sandbox.reset()
        naive = run_worker("naive", sandbox.url, str(slice_n))
        naive_wall = naive["wall"] * n / slice_n
        rows.append(
            {
                "approach": "naive loop, 1 request per message"
                + (f" (timed on {slice_n}, extrapolated)" if slice_n < n else ""),
                "N": n,
                "requests": n,
                "wall_s": f"{naive_wall:.1f}",
                "msg_per_s": f"{n / naive_wall:,.0f}",
                "peak_rss_mb": f"{naive['rss']:.0f}",
                "limit_s": f"{n * latency:.1f}",
                "of_limit": f"{n * latency / naive_wall:.0%}",
                "_wall": naive_wall,
            }
        )
        sandbox.reset()
        http = run_worker("httphook", sandbox.url, str(n), str(args.batch_size))
        rows.append(
            {
                "approach": f"HttpHook.run per batch of {args.batch_size}",
                "N": n,
                "requests": sandbox.stats()["requests"].get("/simple_send/", 0),
                "wall_s": f"{http['wall']:.1f}",
                "msg_per_s": f"{n / http['wall']:,.0f}",
                "peak_rss_mb": f"{http['rss']:.0f}",
                "limit_s": f"{batches * latency:.1f}",
                "of_limit": f"{batches * latency / http['wall']:.0%}",
                "_wall": http["wall"],
            }
        )
        sandbox.reset()
        ours = run_worker("commpeak", sandbox.url, str(n), str(args.batch_size), str(args.concurrency))
        stats = sandbox.stats()
        assert stats["accepted"] == n, stats
        assert stats["duplicated"] == 0, stats
        limit = batches * latency / args.concurrency
        rows.append(
            {
                "approach": f"CommPeakHook, batches of {args.batch_size}, max_concurrency={args.concurrency}",
                "N": n,
                "requests": stats["requests"].get("/simple_send/", 0),
                "wall_s": f"{ours['wall']:.2f}",
                "msg_per_s": f"{n / ours['wall']:,.0f}",
                "peak_rss_mb": f"{ours['rss']:.0f}",
                "limit_s": f"{limit:.2f}",
                "of_limit": f"{limit / ours['wall']:.0%}",
                "vs_naive": f"{naive_wall / ours['wall']:.0f}x",
                "vs_httphook": f"{http['wall'] / ours['wall']:.1f}x",
                "cpu_ms_per_1000": f"{ours['cpu'] * 1000 / (n / 1000):.0f}",
                "_wall": ours["wall"],
            }
        )
    return rows


def latency_bound(args: argparse.Namespace) -> list[dict[str, Any]]:
    """CommPeakHook where the API's latency, not Python, sets the pace (a slow link)."""
    rows = []
    sandbox = Sandbox(latency_ms=args.bound_latency_ms, rate_limit=0, delivery_delay=1)
    try:
        for concurrency in (args.concurrency, 2 * args.concurrency):
            sandbox.reset()
            n = args.bound_n
            ours = run_worker("commpeak", sandbox.url, str(n), str(args.batch_size), str(concurrency))
            requests_made = sandbox.stats()["requests"].get("/simple_send/", 0)
            limit = requests_made * args.bound_latency_ms / 1000 / concurrency
            rows.append(
                {
                    "latency_ms": f"{args.bound_latency_ms:g}",
                    "N": n,
                    "max_concurrency": concurrency,
                    "requests": requests_made,
                    "wall_s": f"{ours['wall']:.2f}",
                    "limit_s": f"{limit:.2f}",
                    "of_limit": f"{limit / ours['wall']:.0%}",
                    "msg_per_s": f"{n / ours['wall']:,.0f}",
                }
            )
    finally:
        sandbox.stop()
    return rows


def sustained_rate(stats: dict[str, Any]) -> float:
    """Messages accepted per second after the first refusal (the initial burst of a full bucket excluded)."""
    if stats["first_refused_at"] is None:
        span = stats["last_accepted_at"] - stats["first_accepted_at"]
        return stats["accepted"] / span if span > 0 else float("inf")
    after = stats["accepted"] - stats["accepted_before_first_refusal"]
    return after / max(stats["last_accepted_at"] - stats["first_refused_at"], 1e-9)


def rate_matrix(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Default settings against a token bucket at each rate and latency: lost, duplicated, sustained."""
    rows = []
    for rate in args.rates:
        for latency_ms in args.latencies:
            sandbox = Sandbox(latency_ms=latency_ms, rate_limit=rate, delivery_delay=1)
            try:
                n = int(rate * args.rate_seconds)
                ours = run_worker("commpeak", sandbox.url, str(n), str(args.batch_size), str(args.concurrency))
                stats = sandbox.stats()
            finally:
                sandbox.stop()
            sustained = sustained_rate(stats)
            bound = args.concurrency * args.batch_size / ours["rtt"] if ours["rtt"] else float("inf")
            target, which = (rate, "limit") if rate <= bound else (bound, "latency bound")
            rows.append(
                {
                    "rate_limit": f"{rate:g}",
                    "latency_ms": f"{latency_ms:g}",
                    "N": n,
                    "lost": n - stats["distinct_internal_ids"],
                    "duplicated": stats["duplicated"],
                    "sustained_msg_s": f"{sustained:,.0f}",
                    "latency_bound_msg_s": f"{bound:,.0f}",
                    "target": which,
                    "of_target": f"{min(sustained / target, 9.99):.1%}",
                    "requests": stats["requests"].get("/simple_send/", 0),
                    "refused": stats["refused"],
                    "cpu_ms_per_1000": f"{ours['cpu'] * 1000 / (n / 1000):.0f}",
                    "_of_target": sustained / target,
                }
            )
    return rows


def drain_recovery(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Another client drains the key for 1 s mid-send: how soon is the limit used again?"""
    rows = []
    for rate in args.rates:
        sandbox = Sandbox(latency_ms=args.latency_ms, rate_limit=rate, delivery_delay=1)
        try:
            n = int(rate * 14)
            worker = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    "commpeak",
                    sandbox.url,
                    str(n),
                    str(args.batch_size),
                    str(args.concurrency),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            while sandbox.stats()["accepted"] < rate * 5:  # five seconds of sending, well past the burst
                time.sleep(0.05)
            drained_at = time.time()
            sandbox.call("/_sandbox/settings", {"drain": 1.0})
            worker.communicate(timeout=600)
            accepted_at = sorted(m["accepted_at"] for m in sandbox.call("/_sandbox/messages")["messages"])
            stats = sandbox.stats()
        finally:
            sandbox.stop()
        back = drained_at + 1.0
        per_second = [sum(1 for t in accepted_at if back + i <= t < back + i + 1) for i in range(6)]
        recovered = next((i + 1 for i, count in enumerate(per_second) if count >= 0.9 * rate), None)
        rows.append(
            {
                "rate_limit": f"{rate:g}",
                "accepted_per_second_after_the_drain": ", ".join(map(str, per_second)),
                "at_90pc_within_s": recovered if recovered is not None else "> 6",
                "lost": n - stats["distinct_internal_ids"],
                "duplicated": stats["duplicated"],
            }
        )
    return rows


def shared_key(args: argparse.Namespace) -> list[dict[str, Any]]:
    """1, 2 and 4 processes send on one key at once: combined share of the limit while all are in flight."""
    rows = []
    for rate in args.shared_rates:
        for procs in (1, 2, 4):
            n = int(rate * 12 / procs)
            accepted, stats, _ = run_senders(args, rate, [n] * procs, stagger=0.0)
            by_proc: dict[int, list[float]] = {}
            for message in accepted:
                by_proc.setdefault(int(message["internal_id"][1:]) // n, []).append(message["accepted_at"])
            start = max(stats["first_refused_at"] or 0, *(min(ts) for ts in by_proc.values()))
            end = min(max(ts) for ts in by_proc.values())
            together = sum(1 for ts in by_proc.values() for t in ts if start < t <= end)
            shares = [sum(1 for t in ts if start < t <= end) / max(together, 1) for _, ts in sorted(by_proc.items())]
            combined = together / max(end - start, 1e-9) / rate
            rows.append(
                {
                    "rate_limit": f"{rate:g}",
                    "processes": procs,
                    "N": f"{procs} x {n}",
                    "lost": procs * n - stats["distinct_internal_ids"],
                    "duplicated": stats["duplicated"],
                    "combined_of_limit": f"{combined:.1%}",
                    "shares": " / ".join(f"{share:.0%}" for share in shares),
                    "_combined": combined,
                }
            )
    return rows


def run_senders(
    args: argparse.Namespace, rate: float, sizes: list[int], stagger: float, max_rate: float | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any], list[int]]:
    """
    One process per chunk of ``sizes`` sending on one sandbox key limited to ``rate``, their starts spread
    over ``stagger`` seconds, each with ``max_rate`` (or none); the chunks' messages are numbered on
    from one another. Returns the sandbox's accepted messages, its stats and each chunk's first number.
    """
    procs = len(sizes)
    offsets = [sum(sizes[:i]) for i in range(procs)]
    sandbox = Sandbox(latency_ms=args.latency_ms, rate_limit=rate, delivery_delay=1)
    try:
        workers = []
        for i in range(procs):
            if i:
                time.sleep(stagger / (procs - 1))
            argv = [sys.executable, __file__, "--worker", "commpeak-from", sandbox.url, str(sizes[i])]
            argv += [str(args.batch_size), str(args.concurrency), str(offsets[i])]
            argv += [] if max_rate is None else [str(max_rate)]
            workers.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        for worker in workers:
            worker.communicate(timeout=900)
        return sandbox.call("/_sandbox/messages")["messages"], sandbox.stats(), offsets
    finally:
        sandbox.stop()


def chunk_sizes(procs: int, rate: float, seconds: float) -> list[int]:
    """A campaign's chunks, 1:2:4 (repeating), together about ``seconds`` of the limit ``rate``."""
    weights = [(1, 2, 4)[i % 3] for i in range(procs)]
    return [int(rate * seconds * w / sum(weights)) for w in weights]


def campaign_on_one_key(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    k processes, chunks of unequal size (1:2:4), starts spread over ``stagger`` seconds, one key:
    the whole run as the user feels it (first acceptance after the bucket's initial burst to the last
    acceptance), the smallest share while all are in flight, and how soon survivors take a finished
    sibling's room.
    """
    rows = []
    for procs in args.campaign_procs:
        for rate in args.campaign_rates:
            for stagger in args.campaign_staggers:
                sizes = chunk_sizes(procs, rate, args.campaign_seconds)
                rows.append(
                    {
                        "processes": procs,
                        "rate_limit": f"{rate:g}",
                        "stagger_s": f"{stagger:g}",
                        "N": " + ".join(map(str, sizes)),
                        **processes_on_one_key(args, rate, sizes, stagger),
                    }
                )
    return rows


def processes_on_one_key(
    args: argparse.Namespace, rate: float, sizes: list[int], stagger: float, max_rate: float | None = None
) -> dict[str, Any]:
    """:func:`run_senders`, then what was lost, duplicated and refused, and :func:`campaign_figures`."""
    accepted, stats, offsets = run_senders(args, rate, sizes, stagger, max_rate)
    times: list[list[float]] = [[] for _ in sizes]
    for message in accepted:
        number = int(message["internal_id"][1:])
        times[max(i for i, offset in enumerate(offsets) if offset <= number)].append(message["accepted_at"])
    return {
        "lost": sum(sizes) - stats["distinct_internal_ids"],
        "duplicated": stats["duplicated"],
        "refused": stats["refused"],
        **campaign_figures(times, rate),
    }


def ceiling_split(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    k processes with equal chunks, started at once, on one key: the default pacing beside ``max_rate``
    = limit / k on each, then the campaign's unequal chunks (1:2:4, staggered) with the same ceiling:
    the split, the refused messages and the whole run.
    """
    rows = []
    for rate in args.shared_rates:
        for procs in args.ceiling_procs:
            equal = [int(rate * args.campaign_seconds / procs)] * procs
            unequal = chunk_sizes(procs, rate, args.campaign_seconds)
            for chunks, sizes, stagger, ceiling in (
                ("equal, at once", equal, 0.0, None),
                ("equal, at once", equal, 0.0, rate / procs),
                ("1:2:4, over 3 s", unequal, 3.0, rate / procs),
            ):
                rows.append(
                    {
                        "rate_limit": f"{rate:g}",
                        "processes": procs,
                        "chunks": chunks,
                        "max_rate": "-" if ceiling is None else f"{ceiling:g}",
                        "N": sum(sizes),
                        **processes_on_one_key(args, rate, sizes, stagger, ceiling),
                    }
                )
    return rows


def simulated_campaigns(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    The campaign of :func:`campaign_on_one_key` on the fake clock (``tests/helpers/ratesim.py``): the
    real :class:`RateController`, one per simulated process, against a simulated token bucket, so
    k = 8 and 5,000 msg/s run as they would on a machine with cores to spare, in milliseconds.

    Each campaign runs once per seed of the gaps' jitter (``--sim-seeds``; seed 0 draws what the
    controllers draw in ``tests/helpers/ratesim.py``) and per latency (``--sim-latencies``).
    """
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from airflow_provider_commpeak._engine.rate import RateController
    from helpers.ratesim import Bucket, Client, FakeClock, Simulation

    rows = []
    for seed in range(args.sim_seeds):
        for latency_ms in args.sim_latencies or [args.latency_ms]:
            for procs in args.sim_procs:
                for rate in args.sim_rates:
                    for stagger in args.campaign_staggers:
                        sizes = chunk_sizes(procs, rate, args.sim_seconds)
                        clock = FakeClock()
                        clients = [
                            Client(
                                f"p{i}",
                                messages=size,
                                start=stagger * i / max(procs - 1, 1),
                                controller=RateController(
                                    clock=clock, rng=random.Random(f"p{i}" if not seed else f"{seed}-p{i}")
                                ),
                            )
                            for i, size in enumerate(sizes)
                        ]
                        sim = Simulation(Bucket(rate), clients, latency=latency_ms / 1000, clock=clock)
                        sim.run()
                        times = [[t for t, n in c.accepted for _ in range(n)] for c in clients]
                        rows.append(
                            {
                                "seed": seed,
                                "latency_ms": f"{latency_ms:g}",
                                "processes": procs,
                                "rate_limit": f"{rate:g}",
                                "stagger_s": f"{stagger:g}",
                                "N": sum(sizes),
                                "lost": sum(sizes) - sum(c.total_accepted for c in clients),
                                "refused_per_message": f"{sim.bucket.refused / sum(sizes):.2f}",
                                **campaign_figures(times, rate),
                            }
                        )
    return rows


def simulated_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    :func:`simulated_campaigns` over every seed and latency, a row per k and rate: the campaigns with a
    window to measure at 70 % of an equal share or more, the worst share and Jain's index, the slowest
    reclaim and the whole run's range.
    """
    summary = []
    for key in dict.fromkeys((r["processes"], r["rate_limit"]) for r in rows):
        cell = [r for r in rows if (r["processes"], r["rate_limit"]) == key]
        shares = [r["_smallest"] for r in cell if r["_smallest"] is not None]
        jains = [r["_jain"] for r in cell if r["_jain"] is not None]
        reclaims = [r["_reclaim"] for r in cell if r["_reclaim"] is not None]
        wholes = [r["_whole"] for r in cell]
        summary.append(
            {
                "processes": key[0],
                "rate_limit": key[1],
                "campaigns": len(cell),
                "at_70pct_or_more": f"{sum(s >= 0.7 for s in shares)} of {len(shares)}",
                "worst_share": f"{min(shares):.0%}" if shares else "-",
                "median_share": f"{statistics.median(shares):.0%}" if shares else "-",
                "worst_jain": f"{min(jains):.3f}" if jains else "-",
                "slowest_reclaim_s": "> 10" if math.inf in reclaims else (f"{max(reclaims):.2f}" if reclaims else "-"),
                "whole_run_of_limit": f"{min(wholes):.1%}-{max(wholes):.1%}",
                "lost": sum(r["lost"] for r in cell),
            }
        )
    return summary


def campaign_figures(times: list[list[float]], rate: float) -> dict[str, Any]:
    """Whole-run share of the limit, smallest share of a fair split, slowest reclaim (see :func:`campaign_on_one_key`)."""
    times = [sorted(ts) for ts in times]

    def count(ts: list[float], start: float, end: float) -> int:
        return bisect.bisect_left(ts, end) - bisect.bisect_left(ts, start)

    events = sorted(t for ts in times for t in ts)
    burst_end = events[min(int(rate), len(events) - 1)]
    whole = (len(events) - int(rate)) / max((events[-1] - burst_end) * rate, 1e-9)
    # shares while all are in flight: from 3 s after the last one's first acceptance to the first finish
    start, end = max(min(ts) for ts in times) + 3, min(max(ts) for ts in times)
    smallest = jain = None
    window = min(5.0, end - start)
    if window >= 1:
        at = start
        while at + window <= end + 1e-9:
            got = [count(ts, at, at + window) for ts in times]
            fair = sum(got) / len(got)
            smallest = min(smallest if smallest is not None else 1.0, min(got) / fair if fair else 1.0)
            squares = sum(n * n for n in got)  # Jain's index: 1 for an equal split, 1/k for one taking all
            jain = min(jain if jain is not None else 1.0, sum(got) ** 2 / (len(got) * squares) if squares else 1.0)
            at += 1
    reclaims = []
    for finished in sorted(max(ts) for ts in times)[:-1]:
        survivors = [ts for ts in times if max(ts) > finished]  # every chunk still to finish, started or not
        if not any(max(ts) > finished + 1 for ts in survivors):
            continue  # none sends a second on: no second to measure
        reclaim = next(
            (
                i * 0.05
                for i in range(200)
                if sum(count(ts, finished + i * 0.05, finished + i * 0.05 + 0.25) for ts in survivors)
                >= 0.9 * rate * 0.25
            ),
            None,
        )
        reclaims.append(reclaim)
    slowest = None if not reclaims else (None if None in reclaims else max(reclaims))
    return {
        "whole_run_of_limit": f"{whole:.1%}",
        "smallest_share_of_fair": "-" if smallest is None else f"{smallest:.0%}",
        "smallest_jain": "-" if jain is None else f"{jain:.3f}",
        "slowest_reclaim_s": "-" if not reclaims else ("> 10" if slowest is None else f"{slowest:.2f}"),
        "_whole": whole,
        "_smallest": smallest,
        "_jain": jain,
        "_reclaim": None if not reclaims else (math.inf if slowest is None else slowest),
    }


def polling(args: argparse.Namespace) -> list[dict[str, Any]]:
    """
    Send N messages in 5 slices ``settle_gap`` apart, then poke while they settle slice by slice.

    The sandbox holds every message at ``sent`` until the poking process has started; then its
    delivery delay is set so that the first slice is final at once and the others follow.
    """
    n, gap, slices = args.polling_n, args.settle_gap, 5
    sandbox = Sandbox(latency_ms=0, rate_limit=0, delivery_delay=3600)
    try:
        uuids: list[str] = []
        first_sent = time.time()
        for start in range(0, n, n // slices):
            part = list(messages(n // slices, start))
            for chunk in range(0, len(part), 1000):
                answer = sandbox.call("/simple_send/", {"messages": part[chunk : chunk + 1000]})
                uuids += [m["message_uuid"] for m in answer["messages"]]
            time.sleep(gap)
        path = Path(tempfile.mkdtemp()) / "uuids.json"
        path.write_text(json.dumps(uuids))
        result = run_worker("polling", sandbox.url, str(path), "500", str(gap), str(first_sent))
    finally:
        sandbox.stop()
    return result["pokes"]


def dry_runs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """A dry run over files of 10,000 and 1,000,000 rows: time and peak memory."""
    rows = []
    for n in args.stream_sizes:
        path = Path(tempfile.mkdtemp()) / f"audience-{n}.jsonl"
        with path.open("w") as out:
            for message in messages(n):
                out.write(json.dumps(message) + "\n")
        result = run_worker("dry-run", str(path))
        path.unlink()
        rows.append(
            {
                "N": n,
                "wall_s": f"{result['wall']:.1f}",
                "peak_rss_mb": f"{result['rss']:.0f}",
                "_rss": result["rss"],
                "segments": result["segments"],
            }
        )
    for row in rows:
        row["rss_vs_smallest"] = f"{row['_rss'] / rows[0]['_rss']:.2f}x"
    return rows


def sensor_scale(args: argparse.Namespace) -> dict[str, Any]:
    """A deferrable wait for N accepted messages given as a report file: what it costs to carry."""
    n = args.scale_n
    sandbox = Sandbox(latency_ms=0, rate_limit=0, delivery_delay=3600)
    try:
        folder = Path(tempfile.mkdtemp())
        report = folder / "report.jsonl"
        with report.open("w") as out:
            for start in range(0, n, 2000):
                answer = sandbox.call("/simple_send/", {"messages": list(messages(min(2000, n - start), start))})
                for entry in answer["messages"]:
                    out.write(
                        json.dumps(
                            {
                                "internal_id": entry["internal_id"],
                                "message_uuid": entry["message_uuid"],
                                "error": None,
                            }
                        )
                        + "\n"
                    )
        # messages become final in the order they were accepted: the first poll finds ~40 % final,
        # later polls the rest, so the pending set shrinks poll by poll
        stats = sandbox.stats()
        spread = time.time() - stats["first_accepted_at"]
        sandbox.call("/_sandbox/settings", {"delivery_delay": spread * 0.6})
        before = sandbox.stats()["requests"].get("/messages_status/", 0)
        result = run_worker("trigger", sandbox.url, str(report), str(folder / "statuses.csv"))
        result["status_requests"] = sandbox.stats()["requests"].get("/messages_status/", 0) - before
    finally:
        sandbox.stop()
    return result


def streaming(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    sandbox = Sandbox(latency_ms=0, rate_limit=0, delivery_delay=1)
    try:
        for n in args.stream_sizes:
            path = Path(tempfile.mkdtemp()) / f"messages-{n}.jsonl"
            with path.open("w") as out:
                for message in messages(n):
                    out.write(json.dumps(message) + "\n")
            sandbox.reset()
            result = run_worker(
                "commpeak-file", sandbox.url, str(n), str(args.batch_size), str(args.concurrency), str(path)
            )
            assert result["accepted"] == n, result
            rows.append(
                {
                    "N": n,
                    "source": "JSON Lines file",
                    "wall_s": f"{result['wall']:.1f}",
                    "peak_rss_mb": f"{result['rss']:.0f}",
                    "_rss": result["rss"],
                }
            )
            path.unlink()
    finally:
        sandbox.stop()
    base = rows[0]["_rss"]
    for row in rows:
        row["rss_vs_smallest"] = f"{row['_rss'] / base:.2f}x"
    return rows


IMPORT_BASELINE = "from airflow.providers.common.compat.sdk import BaseOperator"
IMPORT_PROVIDER = (
    "import airflow_provider_commpeak.operators.commpeak, airflow_provider_commpeak.sensors.commpeak, "
    "airflow_provider_commpeak.notifications.commpeak"
)


def import_seconds(before: str, statement: str) -> float:
    """Seconds a fresh interpreter takes to run ``statement`` after ``before`` (both imports)."""
    code = (
        f"import time, json; {before}; t = time.perf_counter(); {statement}; print(json.dumps(time.perf_counter() - t))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def import_cost(repeats: int) -> list[dict[str, Any]]:
    """
    Median import time of BaseOperator in a fresh process, and what the provider's DAG-facing
    modules add once BaseOperator is imported (what a DAG file pays), each over ``repeats`` processes.
    """
    baseline = statistics.median(import_seconds("pass", IMPORT_BASELINE) for _ in range(repeats))
    added = statistics.median(import_seconds(IMPORT_BASELINE, IMPORT_PROVIDER) for _ in range(repeats))
    return [
        {"import": "BaseOperator, in a fresh process (baseline)", "median_ms": f"{baseline * 1000:.0f}"},
        {
            "import": "operator + sensor + notifier modules, after BaseOperator",
            "median_ms": f"{added * 1000:.0f}",
        },
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--naive-slice", type=int, default=300)
    parser.add_argument("--bound-latency-ms", type=float, default=100.0)
    parser.add_argument("--bound-n", type=int, default=20_000)
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[100, 400, 1500, 5000])
    parser.add_argument("--latencies", type=lambda s: [float(x) for x in s.split(",")], default=[0, 20, 100])
    parser.add_argument("--rate-seconds", type=float, default=12.0, help="each rate run lasts about this long")
    parser.add_argument("--shared-rates", type=lambda s: [float(x) for x in s.split(",")], default=[400, 1500])
    parser.add_argument("--campaign-procs", type=lambda s: [int(x) for x in s.split(",")], default=[2, 4])
    parser.add_argument("--campaign-rates", type=lambda s: [float(x) for x in s.split(",")], default=[400, 1500])
    parser.add_argument("--campaign-staggers", type=lambda s: [float(x) for x in s.split(",")], default=[0, 3])
    parser.add_argument("--campaign-seconds", type=float, default=14.0, help="each campaign run lasts about this long")
    parser.add_argument("--ceiling-procs", type=lambda s: [int(x) for x in s.split(",")], default=[2, 4])
    parser.add_argument("--sim-procs", type=lambda s: [int(x) for x in s.split(",")], default=[2, 4, 8])
    parser.add_argument("--sim-rates", type=lambda s: [float(x) for x in s.split(",")], default=[100, 400, 1500, 5000])
    parser.add_argument("--sim-seconds", type=float, default=40.0, help="each simulated campaign lasts about this long")
    parser.add_argument(
        "--sim-seeds",
        type=int,
        default=1,
        help="seeds of the jitter each simulated campaign runs with (a summary if > 1)",
    )
    parser.add_argument(
        "--sim-latencies",
        type=lambda s: [float(x) for x in s.split(",")],
        default=[],
        help="latencies (ms) of the simulated campaigns (default: --latency-ms)",
    )
    parser.add_argument("--cap-rates", type=lambda s: [float(x) for x in s.split(",")], default=[400, 1500])
    parser.add_argument(
        "--cap-seconds", type=float, default=10.0, help="each concurrency-cap run lasts about this long"
    )
    parser.add_argument("--polling-n", type=int, default=100_000)
    parser.add_argument("--status-limits", type=lambda s: [float(x) for x in s.split(",")], default=[10, 40])
    parser.add_argument("--status-requests", type=int, default=300, help="requests of each paced status poll")
    parser.add_argument("--settle-gap", type=float, default=1.5, help="seconds between the slices' deliveries")
    parser.add_argument("--stream-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 1_000_000])
    parser.add_argument("--import-repeats", type=int, default=11)
    parser.add_argument("--scale-n", type=int, default=1_000_000, help="messages of the sensor-at-scale run")
    parser.add_argument("--ledger-n", type=int, default=100_000, help="messages of each store's send")
    parser.add_argument(
        "--ledger-read-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 1_000_000]
    )
    parser.add_argument("--pushback-n", type=int, default=2000, help="messages of each pushback run")
    parser.add_argument("--pushback-repeats", type=int, default=3, help="runs of each pushback scenario (median)")
    parser.add_argument("--suppression-audience", type=int, default=10_000, help="audience of the suppression run")
    parser.add_argument(
        "--suppression-sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 10_000_000]
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run with small sizes")
    parser.add_argument(
        "--only",
        default="throughput,bound,rate,drain,shared,campaign,simcampaign,ceiling,pushback,cap,statuspace,streaming,ledger,dryrun,suppression,phones,polling,scale,imports",
        help="comma-separated sections to run (default: all)",
    )
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.naive_slice, args.bound_n = [2000], 50, 2000
        args.rates, args.latencies, args.rate_seconds, args.shared_rates = [400], [20], 5.0, [400]
        args.scale_n = 20_000
        args.polling_n, args.settle_gap, args.stream_sizes, args.import_repeats = 5000, 0.6, [2000, 20000], 3
        args.ledger_n, args.ledger_read_sizes = 5000, [2000, 20000]
        args.suppression_audience, args.suppression_sizes = 2000, [2000, 200_000]
        args.pushback_repeats = 1
        args.campaign_procs, args.campaign_rates, args.campaign_staggers = [2], [400], [3]
        args.ceiling_procs = [2]
        args.sim_procs, args.sim_rates, args.sim_seeds = [2, 8], [400], 2
        args.cap_rates, args.cap_seconds = [400], 5.0
        args.status_limits, args.status_requests = [20], 60

    print(
        f"# airflow-provider-commpeak benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]})\n"
    )
    sections = set(args.only.split(","))
    failures: list[str] = []
    if "throughput" in sections:
        sandbox = Sandbox(latency_ms=args.latency_ms, rate_limit=0, delivery_delay=1)
        try:
            rows = throughput(args, sandbox)
        finally:
            sandbox.stop()
        print(f"## Throughput, sandbox latency {args.latency_ms:g} ms per request, no rate limit\n")
        print(
            table(
                rows,
                [
                    "approach",
                    "N",
                    "requests",
                    "wall_s",
                    "msg_per_s",
                    "peak_rss_mb",
                    "limit_s",
                    "of_limit",
                    "vs_naive",
                    "vs_httphook",
                    "cpu_ms_per_1000",
                ],
            )
        )
    if "bound" in sections:
        print(f"\n## Latency-bound: sandbox latency {args.bound_latency_ms:g} ms per request\n")
        print(
            table(
                latency_bound(args),
                [
                    "latency_ms",
                    "N",
                    "max_concurrency",
                    "requests",
                    "wall_s",
                    "limit_s",
                    "of_limit",
                    "msg_per_s",
                ],
            )
        )
    if "rate" in sections:
        rows = rate_matrix(args)
        print(
            f"\n## Rate-limited, default settings (batches of {args.batch_size}, max_concurrency={args.concurrency})\n"
        )
        print(
            table(
                rows,
                [
                    "rate_limit",
                    "latency_ms",
                    "N",
                    "lost",
                    "duplicated",
                    "sustained_msg_s",
                    "latency_bound_msg_s",
                    "target",
                    "of_target",
                    "requests",
                    "refused",
                    "cpu_ms_per_1000",
                ],
            )
        )
        failures += [
            f"rate {r['rate_limit']} @ {r['latency_ms']} ms: {r['of_target']}"
            for r in rows
            if r["_of_target"] < 0.95 or r["lost"] or r["duplicated"]
        ]
    if "drain" in sections:
        rows = drain_recovery(args)
        print(f"\n## Recovery after another client drains the key for 1 s (latency {args.latency_ms:g} ms)\n")
        print(
            table(
                rows,
                [
                    "rate_limit",
                    "accepted_per_second_after_the_drain",
                    "at_90pc_within_s",
                    "lost",
                    "duplicated",
                ],
            )
        )
        failures += [
            f"drain at {r['rate_limit']}"
            for r in rows
            if not isinstance(r["at_90pc_within_s"], int) or r["at_90pc_within_s"] > 5 or r["lost"] or r["duplicated"]
        ]
    if "shared" in sections:
        rows = shared_key(args)
        print(f"\n## Processes sending on one key at once (latency {args.latency_ms:g} ms; while all are in flight)\n")
        print(table(rows, ["rate_limit", "processes", "N", "lost", "duplicated", "combined_of_limit", "shares"]))
        failures += [
            f"shared at {r['rate_limit']}" for r in rows if r["_combined"] < 0.9 or r["lost"] or r["duplicated"]
        ]
    if "campaign" in sections:
        rows = campaign_on_one_key(args)
        print(
            f"\n## A campaign on one key: k processes, chunks 1:2:4, staggered starts (latency {args.latency_ms:g} ms;"
            " the whole run)\n"
        )
        columns = ["processes", "rate_limit", "stagger_s", "N", "lost", "duplicated", "refused", "whole_run_of_limit"]
        print(table(rows, [*columns, "smallest_share_of_fair", "smallest_jain", "slowest_reclaim_s"]))
        failures += [
            f"campaign of {r['processes']} at {r['rate_limit']}, stagger {r['stagger_s']} s: {r['whole_run_of_limit']}"
            for r in rows
            if r["_whole"] < 0.95 or r["lost"] or r["duplicated"]
        ]
    if "ceiling" in sections:
        rows = ceiling_split(args)
        print(
            f"\n## max_rate = limit / k on each of k processes, beside the default (latency {args.latency_ms:g} ms;"
            " the whole run)\n"
        )
        columns = ["rate_limit", "processes", "chunks", "max_rate", "N", "lost", "duplicated", "refused"]
        print(table(rows, [*columns, "whole_run_of_limit", "smallest_share_of_fair", "slowest_reclaim_s"]))
        failures += [
            f"max_rate {r['max_rate']} x {r['processes']} at {r['rate_limit']}: lost or duplicated"
            for r in rows
            if r["lost"] or r["duplicated"]
        ]
        failures += [  # the README's promise for a ceiling of an equal share on equal chunks
            f"max_rate {r['max_rate']} x {r['processes']} at {r['rate_limit']}: {r['refused']} refused, "
            f"smallest share {r['smallest_share_of_fair']}"
            for r in rows
            if r["max_rate"] != "-"
            and r["chunks"].startswith("equal")
            and (r["refused"] or (r["_smallest"] is not None and r["_smallest"] < 0.97))
        ]
    if "cap" in sections:
        rows = concurrency_cap(args)
        print(
            f"\n## An API that serves 2 requests at a time (a bare 429 to a third), vs no cap "
            f"(latency {args.latency_ms:g} ms, {args.concurrency} in flight)\n"
        )
        columns = ["rate_limit", "N", "msg_s_no_cap", "msg_s_cap_2", "cap_vs_no_cap", "bare_429s", "lost"]
        print(table(rows, [*columns, "duplicated"]))
        failures += [
            f"a 2-request cap at {r['rate_limit']} costs {r['_cost']:.0%} of throughput (target 20 %)"
            for r in rows
            if r["_cost"] > 0.2 or r["lost"] or r["duplicated"]
        ]
    if "simcampaign" in sections:
        rows = simulated_campaigns(args)
        print("\n## The same campaign on the fake clock: k simulated processes (the whole run)\n")
        columns = ["processes", "rate_limit", "stagger_s", "latency_ms", "N", "lost", "whole_run_of_limit"]
        first = [r for r in rows if r["seed"] == 0]
        print(table(first, [*columns, "smallest_share_of_fair", "smallest_jain", "slowest_reclaim_s"]))
        if len(first) < len(rows):
            print(f"\n### Over {args.sim_seeds} seeds of the jitter and every latency, a row per k and rate\n")
            summary = simulated_summary(rows)
            print(table(summary, list(summary[0])))
        failures += [
            f"simulated campaign of {r['processes']} at {r['rate_limit']}, stagger {r['stagger_s']} s: "
            f"{r['whole_run_of_limit']}"
            for r in rows
            if r["_whole"] < 0.95 or r["lost"]
        ]
    if "statuspace" in sections:
        rows = status_pacing(args)
        print("\n## A long status poll against a limit on status requests with no burst (latency 5 ms)\n")
        print(
            table(
                rows, ["limit_req_s", "poll", "requests", "seconds", "served_req_s", "share_of_limit", "429s", "read"]
            )
        )
        paced = {r["limit_req_s"]: r["_share"] for r in rows if r["_paced"]}
        failures += [
            f"a paced status poll at {r['limit_req_s']} req/s is not above the unpaced one"
            for r in rows
            if not r["_paced"] and paced[r["limit_req_s"]] <= r["_share"]
        ]
        failures += [f"status poll at {r['limit_req_s']} req/s read {r['_lost']} fewer" for r in rows if r["_lost"]]
    if "streaming" in sections:
        print("\n## Streaming from a file: peak RSS\n")
        print(table(streaming(args), ["N", "source", "wall_s", "peak_rss_mb", "rss_vs_smallest"]))
    if "ledger" in sections:
        sends, reads = ledger_costs(args)
        print("\n## The send ledger: each store's cost on a send (sandbox latency 0, batches of 100, 4 in flight)\n")
        print(table(sends, ["store", "N", "cpu_ms_per_1000", "added_cpu_ms_per_1000", "wall_ms_per_1000"]))
        print("\n## A retry reading its ledger (ledger_path on local disk, batches of 1,000, fresh process)\n")
        print(
            table(reads, ["N", "records", "log_mb", "largest_record_bytes", "read_s", "peak_rss_mb", "rss_vs_smallest"])
        )
        added = (sends[2]["_cpu"] - sends[0]["_cpu"]) * 1000 / args.ledger_n * 1000
        if added > 5:
            failures.append(f"ledger_path adds {added:.1f} ms CPU per 1,000 messages (target 5)")
        if max(r["_largest"] for r in reads) > 32_000:
            failures.append("a ledger record above 32 KB")
        if reads[-1]["_read"] > 10:
            failures.append(f"reading the largest ledger took {reads[-1]['_read']:.1f} s (target 10)")
    if "polling" in sections:
        pokes = polling(args)
        print(f"\n## Sensor polling cost, {args.polling_n:,} messages settling (status_batch_size=500)\n")
        print(table(pokes, ["pending", "requests", "expected"]))
        assert all(p["requests"] == p["expected"] for p in pokes), "requests per poke != ceil(pending / chunk)"
    if "dryrun" in sections:
        print("\n## Dry run of a file (no request, no connection): time and peak RSS\n")
        print(table(dry_runs(args), ["N", "wall_s", "peak_rss_mb", "rss_vs_smallest", "segments"]))
    if "pushback" in sections:
        pushes = pushback_cost(args)
        print(f"\n## Pushback: 8 bare 429s on a {args.pushback_n:,}-message send (latency 20 ms, median of runs)\n")
        print(table(pushes, ["scenario", "N", "wall_s", "extra_s"]))
        if pushes[-1]["_wall"] - pushes[0]["_wall"] > 1.5:
            failures.append(f"8 bare 429s cost {pushes[-1]['extra_s']} s (target 1.5)")
    if "suppression" in sections:
        lists = suppression_lists(args)
        print(
            f"\n## A suppression list against an audience of {args.suppression_audience:,} (dry run, fresh process)\n"
        )
        print(table(lists, ["list_numbers", "wall_s", "peak_rss_mb", "rss_vs_smallest", "suppressed"]))
        if lists[-1]["_rss"] > 1.5 * lists[0]["_rss"]:
            failures.append(
                f"a suppression list of {lists[-1]['list_numbers']:,} took {lists[-1]['rss_vs_smallest']} the memory"
            )
        if len({row["suppressed"] for row in lists}) != 1:
            failures.append("the suppressed count changed with the list's size")
    if "phones" in sections:
        n = 1_000_000 if not args.quick else 100_000
        result = run_worker("phones", str(n))
        per_million = 1_000_000 / n
        print(f"\n## Phone numbers: seconds to normalise 1,000,000 (measured on {n:,})\n")
        print(
            table(
                [
                    {
                        "numbers": "clean international digits (4477009xxxxx), cached fast path",
                        "seconds_per_1M": f"{result['clean'] * per_million:.1f}",
                    },
                    {
                        "numbers": "formatted (+44 7700 9xxxxx), cached fast path",
                        "seconds_per_1M": f"{result['formatted'] * per_million:.1f}",
                    },
                    {
                        "numbers": "formatted, a libphonenumber parse each (what the fast path saves)",
                        "seconds_per_1M": f"{result['parse_each'] * per_million:.1f}",
                    },
                ],
                ["numbers", "seconds_per_1M"],
            )
        )
    if "scale" in sections:
        result = sensor_scale(args)
        print(f"\n## Deferrable sensor at scale: {args.scale_n:,} accepted messages from a report file\n")
        rows = [
            {"what": "trigger kwargs (serialized)", "value": f"{result['kwargs_bytes']:,} bytes"},
            {"what": "trigger event", "value": f"{result['event_bytes']:,} bytes ({result['status']})"},
            {"what": "sensor XCom (counts; statuses in a file)", "value": f"{result['xcom_bytes']:,} bytes"},
            {"what": "uuids asked per poll", "value": ", ".join(f"{p:,}" for p in result["polls"])},
            {
                "what": "status requests per poll (500 uuids each)",
                "value": ", ".join(str(math.ceil(p / 500)) for p in result["polls"]),
            },
            {
                "what": "status requests in all (polls + the final sweep for the file)",
                "value": f"{result['status_requests']:,}",
            },
            {
                "what": "RSS of the process before the trigger ran (its baseline)",
                "value": f"{result['trigger_baseline_rss']:.0f} MB",
            },
            {
                "what": "peak RSS while the trigger ran, above that baseline",
                "value": f"{result['trigger_rss'] - result['trigger_baseline_rss']:.0f} MB",
            },
            {"what": "trigger wall time", "value": f"{result['trigger_wall']:.1f} s"},
        ]
        print(table(rows, ["what", "value"]))
        if result["kwargs_bytes"] > 64 * 1024 or result["xcom_bytes"] > 64 * 1024:
            failures.append("sensor kwargs or XCom above 64 KiB")
        if args.scale_n >= 1_000_000 and result["trigger_rss"] - result["trigger_baseline_rss"] > 64:
            failures.append("the trigger's peak RSS is more than 64 MB above its baseline")
    if "imports" in sections:
        print(f"\n## Parse-time import cost (median of {args.import_repeats} fresh processes)\n")
        print(table(import_cost(args.import_repeats), ["import", "median_ms"]))
    if failures:
        print(f"\nBelow target: {'; '.join(failures)}")
    return 1 if failures and not args.quick else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "naive":
            result = worker_naive(rest[0], int(rest[1]))
        elif kind == "httphook":
            result = worker_httphook(rest[0], int(rest[1]), int(rest[2]))
        elif kind == "commpeak":
            result = worker_commpeak(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
        elif kind == "commpeak-from":
            ceiling = float(rest[5]) if len(rest) > 5 else None
            result = worker_commpeak(
                rest[0], int(rest[1]), int(rest[2]), int(rest[3]), start=int(rest[4]), max_rate=ceiling
            )
        elif kind == "commpeak-file":
            result = worker_commpeak(rest[0], int(rest[1]), int(rest[2]), int(rest[3]), source=rest[4])
        elif kind == "ledger-send":
            result = worker_ledger_send(rest[0], int(rest[1]), rest[2], rest[3])
        elif kind == "ledger-write":
            result = worker_ledger_write(rest[0], int(rest[1]), int(rest[2]))
        elif kind == "ledger-read":
            result = worker_ledger_read(rest[0])
        elif kind == "dry-run":
            result = worker_dry_run(rest[0])
        elif kind == "suppressed-dry-run":
            result = worker_suppressed_dry_run(rest[0], rest[1])
        elif kind == "phones":
            result = worker_phones(int(rest[0]))
        elif kind == "trigger":
            result = worker_trigger(rest[0], rest[1], rest[2])
        elif kind == "status-poll":
            result = worker_status_poll(rest[0], int(rest[1]), rest[2] == "1")
        elif kind == "polling":
            result = worker_polling(rest[0], rest[1], int(rest[2]), float(rest[3]), float(rest[4]))
        else:
            raise SystemExit(f"unknown worker {kind}")
        print(json.dumps(result))
        raise SystemExit(0)
    with scratch_space():
        status = main()
    raise SystemExit(status)
