"""
One deadline per request, and whether any byte of it left the client.

``requests`` only knows per-operation timeouts: a server trickling one byte a second keeps each read
under the read timeout and holds a request forever. Here every request of the hook's session runs
under a :class:`RequestTrace` with a deadline; one watchdog thread shuts the socket down when the
deadline passes, so the whole answer (connect, headers, body) takes at most the timeout. The same
trace records whether the request's first byte was written: a failure before that proves the server
never saw the request, so it is safe to send again.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_local = threading.local()


class DeadlineExceeded(TimeoutError):
    """The request's deadline passed before a connection was made."""


class RequestTrace:
    """
    One request in flight: its deadline, the connection carrying it, and whether it was sent.

    :param deadline: ``time.monotonic()`` value by which the whole answer must have arrived.
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        #: ``None`` until a connection of ours carries the request (never, with a test double).
        self.bytes_sent: bool | None = None
        self.expired = False
        self.done = False
        self._lock = threading.Lock()
        self._conn: Any = None

    def attach(self, conn: Any) -> None:
        """Note the connection that carries this request (raises once the deadline passed)."""
        with self._lock:
            if self.expired:
                raise DeadlineExceeded("the request's deadline passed")
            self._conn = conn
            conn._commpeak_trace = self
            if self.bytes_sent is None:
                self.bytes_sent = False

    def mark_sent(self) -> None:
        self.bytes_sent = True

    def expire(self) -> None:
        """Called by the watchdog at the deadline: shut the socket down so every read returns."""
        with self._lock:
            if self.done:
                return
            self.expired = True
            conn = self._conn
            sock = getattr(conn, "sock", None) if getattr(conn, "_commpeak_trace", None) is self else None
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with self._lock:
            self.done = True
            self._conn = None


class _Watchdog:
    """One daemon thread expiring traces at their deadlines (restarted in a forked child)."""

    def __init__(self) -> None:
        self._pid = -1
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, RequestTrace]] = []

    def watch(self, trace: RequestTrace) -> None:
        if self._pid != os.getpid():  # first use, or a forked child: the parent's thread is gone
            self._pid = os.getpid()
            self._cond = threading.Condition()
            self._heap = []
            threading.Thread(target=self._run, args=(self._cond,), name="commpeak-deadlines", daemon=True).start()
        with self._cond:
            heapq.heappush(self._heap, (trace.deadline, next(self._counter), trace))
            if self._heap[0][2] is trace:
                self._cond.notify()

    def _run(self, cond: threading.Condition) -> None:
        while True:
            expired: list[RequestTrace] = []
            with cond:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][0] <= now):
                    trace = heapq.heappop(self._heap)[2]
                    if not trace.done:
                        expired.append(trace)
                if not expired:
                    cond.wait(self._heap[0][0] - now if self._heap else None)
            for trace in expired:
                trace.expire()


_watchdog = _Watchdog()


@contextmanager
def request_deadline(seconds: float) -> Iterator[RequestTrace]:
    """Run the requests made in this block (this thread) under one deadline ``seconds`` from now."""
    trace = RequestTrace(time.monotonic() + seconds)
    _watchdog.watch(trace)
    _local.trace = trace
    try:
        yield trace
    finally:
        _local.trace = None
        trace.finish()


def _current() -> RequestTrace | None:
    return getattr(_local, "trace", None)


class _TracedConnection:
    """Mixed into urllib3's connections: attach to the current trace, mark the first byte sent."""

    def connect(self) -> None:
        trace = _current()
        if trace is not None:
            trace.attach(self)
        super().connect()  # type: ignore[misc]
        if trace is not None and trace.expired:
            self.close()  # type: ignore[attr-defined]
            raise DeadlineExceeded("the request's deadline passed while connecting")

    def send(self, data: Any) -> None:
        trace = _current()
        if trace is not None:
            if self.sock is None:  # type: ignore[attr-defined]
                self.connect()  # a failure here is still "before sending"
            trace.attach(self)
            trace.mark_sent()
        super().send(data)  # type: ignore[misc]


class _HTTPConnection(_TracedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_TracedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections report to the current :class:`RequestTrace`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools keep their own connections
            manager.pool_classes_by_scheme = _POOLS
        return manager
