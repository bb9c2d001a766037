"""
A discrete-event simulation of the send pipeline's pacing against a token-bucket API, on a fake clock.

Senders reserve room from a real :class:`RateController`, take messages from a shared queue (pushed
back ones first), and post them; the simulated API accepts each request's messages in order while its
token bucket has tokens and leaves the rest out, as CommPeak's own example does. Nothing sleeps:
thousands of simulated seconds run in milliseconds, the same way on an idle or a loaded machine.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from airflow_provider_commpeak._engine.rate import RateController


class FakeClock:
    """Monotonic seconds that move only when told to (``sleep`` moves them at once)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> bool:
        """Stand in for a wait: advance the clock, never block; ``False`` = not stopped."""
        with self._lock:
            self.now += max(seconds, 0.0)
        return False


@dataclass
class Bucket:
    """The API's limit: ``rate`` msg/s, ``capacity`` tokens (default one second's worth)."""

    rate: float
    capacity: float | None = None
    tokens: float = field(init=False)
    updated: float = field(init=False, default=0.0)
    drains: list[tuple[float, float]] = field(default_factory=list)
    #: Messages it left out so far (asked for with no token for them).
    refused: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.capacity = self.capacity or self.rate
        self.tokens = self.capacity

    def take(self, now: float, wanted: int) -> int:
        taken = self._take(now, wanted)
        self.refused += wanted - taken
        return taken

    def _take(self, now: float, wanted: int) -> int:
        for start, end in self.drains:
            if start <= now < end:
                self.tokens, self.updated = 0.0, now
                return 0
        last = max([self.updated] + [end for start, end in self.drains if end <= now])
        self.tokens = min(self.capacity, self.tokens + (now - last) * self.rate)
        self.updated = now
        taken = min(wanted, int(self.tokens))
        self.tokens -= taken
        return taken


@dataclass
class Client:
    """One sending process: its own controller, queue and senders."""

    name: str
    messages: int
    batch_size: int = 100
    concurrency: int = 4
    start: float = 0.0
    controller: RateController | None = None
    queue: int = field(init=False)
    pushed_back: int = 0
    in_flight: int = 0
    accepted: list[tuple[float, int]] = field(default_factory=list)
    requests: int = 0
    finished_at: float | None = None

    def __post_init__(self) -> None:
        self.queue = self.messages

    @property
    def total_accepted(self) -> int:
        return sum(n for _, n in self.accepted)


class Simulation:
    """
    Run clients against one bucket. ``latency`` is the round trip of one request (seconds).

    :param on_tick: Called with the simulation at every event (e.g. to start a drain).
    """

    def __init__(self, bucket: Bucket, clients: list[Client], *, latency: float = 0.0, clock: FakeClock) -> None:
        self.bucket = bucket
        self.clients = clients
        self.latency = latency
        self.clock = clock
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._counter = itertools.count()
        for client in clients:
            client.controller = client.controller or RateController(clock=clock, rng=random.Random(client.name))
            for _ in range(client.concurrency):
                self._at(self.clock.now + client.start, lambda c=client: self._ready(c))

    def _at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._counter), action))

    def _ready(self, client: Client) -> None:
        assert client.controller is not None
        allowed, wait = client.controller.reserve(client.batch_size)
        self._at(self.clock.now + wait, lambda: self._send(client, allowed))

    def _send(self, client: Client, allowed: int) -> None:
        assert client.controller is not None
        if not allowed:  # the controller's next slot has come: ask again
            self._ready(client)
            return
        from_back = min(allowed, client.pushed_back)
        fresh = min(allowed - from_back, client.queue)
        size = from_back + fresh
        if size < allowed:
            client.controller.release(allowed - size)
        if size == 0:
            if client.in_flight == 0 and client.pushed_back == 0 and client.queue == 0:
                client.finished_at = client.finished_at or self.clock.now
                return
            self._at(self.clock.now + 0.05, lambda: self._ready(client))
            return
        client.pushed_back -= from_back
        client.queue -= fresh
        client.in_flight += 1
        client.requests += 1
        sent_at = self.clock.now
        arrival = self.clock.now + self.latency / 2
        self._at(arrival, lambda: self._arrive(client, size, sent_at))

    def _arrive(self, client: Client, size: int, sent_at: float) -> None:
        taken = self.bucket.take(self.clock.now, size)
        self._at(self.clock.now + self.latency / 2, lambda: self._answer(client, size, taken, sent_at))

    def _answer(self, client: Client, size: int, taken: int, sent_at: float) -> None:
        assert client.controller is not None
        client.in_flight -= 1
        client.pushed_back += size - taken
        if taken:
            client.accepted.append((self.clock.now, taken))
        client.controller.record(sent_at=sent_at, sent=size, accepted=taken, refused=size - taken)
        self._ready(client)

    def run(self, until: float = 10_000.0) -> None:
        end = self.clock.now + until
        while self._events and self._events[0][0] <= end:
            when, _, action = heapq.heappop(self._events)
            self.clock.now = max(self.clock.now, when)
            action()
            if all(c.finished_at is not None for c in self.clients):
                return

    def accepted_between(self, start: float, end: float, clients: list[Client] | None = None) -> int:
        return sum(n for c in (clients or self.clients) for t, n in c.accepted if start <= t - self.origin < end)

    @property
    def origin(self) -> float:
        return 1000.0


def whole_run_share(sim: Simulation, rate: float, burst: float) -> float:
    """
    Messages accepted per second over the whole run, as a share of ``rate``: from the first
    acceptance after the bucket's initial ``burst`` to the last acceptance (stagger and tail included).
    """
    events = sorted((t, n) for c in sim.clients for t, n in c.accepted)
    total, start, after = 0, None, 0
    for t, n in events:
        total += n
        if start is None and total > burst:
            start, after = t, total - burst
        elif start is not None:
            after += n
    end = events[-1][0]
    return after / ((end - start) * rate) if start is not None and end > start else 1.0


def reclaim_seconds(sim: Simulation, finished: Client, rate: float, share: float = 0.9) -> float | None:
    """
    Seconds from ``finished``'s end until the clients still to finish (started or not) took ``share``
    of ``rate`` over a quarter second; ``None`` if they never did within 10 s.
    """
    end = finished.finished_at
    assert end is not None
    survivors = [c for c in sim.clients if c is not finished and (c.finished_at or math.inf) > end]
    step = 0.05
    for i in range(200):
        start = end + i * step
        got = sum(n for c in survivors for t, n in c.accepted if start <= t < start + 0.25)
        if got >= share * rate * 0.25:
            return i * step
    return None
