"""
The rate controller: one per hook, shared by every request in flight, deciding *when* the next batch
may go (the queue decides *what* goes).

Until the API first pushes back (a ``RATE_LIMIT``, a message left out of an answer, a 429/503)
nothing is paced. From then on messages are let through at ``rate`` msg/s, and ``rate`` is revised
at the end of each *window* (at least :data:`WINDOW` seconds and :data:`MIN_ANSWERS` answers):

- **pushback in the window**: the API is saturated, so what it accepted over the window is what it
  sustains for us; pace at :data:`HEADROOM` times that (a few refusals keep its allowance from going
  unused). Never drop faster than :data:`BACKOFF` per window (multiplicative decrease), so a short
  drain by another client of the same key does not throw the pace to the floor. The first window
  starts at the first pushback and ignores answers to requests sent before it, so the server's
  initial burst (a full token bucket) is never measured as its rate.
- **no pushback, and the pace was what held senders back** (most of them waited for it): probe
  upwards. Below the best rate the API sustained in the last :data:`MEMORY` seconds, return to it at
  once (a drain by another client recovers within a window or two). At or above it, or with no rate
  measured yet, add :data:`STEP` of the pace, twice as much after each further window without
  pushback: a gentle probe near the known limit that still finds a raised limit quickly.

The first pace, at the first pushback, is what the API accepted over the last second, and at least
one full request per second (a refusal can arrive before the acceptances of its own burst). If the
send had run unpaced for a while, that rate is remembered as one the API sustained.

Request size follows too: a paced request carries at most :data:`BURST` seconds' worth of messages;
and if, in a window with pushback, even the best-served request got less than half of what it
carried, the API's burst allowance is small: requests shrink to what the best one got accepted, for
:data:`MEMORY` seconds (then the full size is tried again).

A 429/503 with ``Retry-After`` also pauses every sender until then. The controller never sleeps: it
tells the caller how long to wait, so it runs on a fake clock in tests.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Shortest window over which a rate is measured (seconds).
WINDOW = 1.0
#: Fewest answers a window needs before it closes (at low rates, windows last longer).
MIN_ANSWERS = 2
#: Pace this much above the measured rate while the API pushes back.
HEADROOM = 1.05
#: The most the pace drops in one window.
BACKOFF = 0.5
#: Additive increase per window, as a share of the best recently sustained rate.
STEP = 0.1
#: How long a sustained rate is remembered as a target to recover to (seconds).
MEMORY = 60.0
#: The slowest pace: one message a second, a probe that notices when the API takes messages again.
MIN_RATE = 1.0
#: A paced request carries at most this many seconds' worth of messages, so sends stay smooth.
BURST = 0.25
#: The pace "held senders back" in a window when at least this share of their reservations waited.
BINDING = 0.5


class RateController:
    """
    Paces every sender of one hook; thread-safe.

    :param clock: Monotonic seconds (a fake clock in tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        #: Messages per second, or ``None`` while unpaced.
        self.rate: float | None = None
        self._started = clock()
        self._unpaced: deque[tuple[float, int]] = deque()
        #: The most messages a paced request may carry, when the API's bursts proved small.
        self.size_cap: int | None = None
        self._size_cap_until = 0.0
        self._largest_request = 1
        self._probes = 0
        self._paced_since = math.inf
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._sustained: deque[tuple[float, float]] = deque()
        self._reset_window(self._started)

    def _reset_window(self, now: float) -> None:
        self._window_start = now
        self._sent = self._accepted = self._refused = self._answers = 0
        self._reservations = self._waited = 0
        self._largest_sent = self._largest_accepted = 0

    # -- senders ask ---------------------------------------------------------------------------------

    def reserve(self, wanted: int) -> tuple[int, float]:
        """
        Reserve room for up to ``wanted`` messages.

        :returns: ``(messages, wait)``: send at most ``messages``, after waiting ``wait`` seconds.
        """
        with self._lock:
            now = self._clock()
            self._largest_request = max(self._largest_request, wanted)
            start = max(now, self._paused_until)
            if self.rate is None:
                return wanted, start - now
            if self.size_cap is not None and now >= self._size_cap_until:
                self.size_cap = None
            allowed = min(wanted, max(1, int(self.rate * BURST)), self.size_cap or wanted)
            start = max(start, self._next_slot)
            self._next_slot = start + allowed / self.rate
            self._reservations += 1
            self._waited += start > now
            return allowed, start - now

    def release(self, unused: int) -> None:
        """Give back reserved room a sender did not use (the queue held fewer messages)."""
        with self._lock:
            if self.rate is not None and unused > 0:
                self._next_slot = max(self._clock(), self._next_slot - unused / self.rate)

    # -- answers tell --------------------------------------------------------------------------------

    def record(self, *, sent_at: float, sent: int, accepted: int, refused: int) -> None:
        """
        Note one answer.

        :param sent_at: The controller clock's time when the request went out.
        :param sent: Messages the request carried.
        :param accepted: Messages the API accepted.
        :param refused: Messages it pushed back (``RATE_LIMIT``, left out, or all of a 429/503).
        """
        with self._lock:
            now = self._clock()
            if self.rate is None:
                if accepted:
                    self._unpaced.append((now, accepted))
                if refused:
                    self._start_pacing(now)
                return
            if sent_at < self._paced_since:
                return  # sent during the unpaced burst: says nothing about the paced rate
            self._sent += sent
            self._accepted += accepted
            self._refused += refused
            self._answers += 1
            self._largest_sent = max(self._largest_sent, sent)
            self._largest_accepted = max(self._largest_accepted, accepted)
            if now - self._window_start >= WINDOW and self._answers >= MIN_ANSWERS:
                self._close_window(now)

    def pause(self, seconds: float) -> None:
        """
        Hold every sender for ``seconds`` (a 429/503's ``Retry-After``, or a backoff). A pause alone
        does not start pacing: refusals recorded by :meth:`record` do.
        """
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    # -- internals -----------------------------------------------------------------------------------

    def _start_pacing(self, now: float) -> None:
        """First pushback: start from the last second's acceptances (revised at the first window's end)."""
        last_second = sum(n for t, n in self._unpaced if t >= now - WINDOW)
        if now - self._started >= 2 * WINDOW and last_second:
            self._sustained.append((now, last_second / WINDOW))  # a rate held for a while, not a burst
        self.rate = max(MIN_RATE, self._largest_request / WINDOW, last_second / WINDOW)
        self._unpaced.clear()
        log.debug("First pushback: pacing at %.0f msg/s", self.rate)
        self._paced_since = now
        self._next_slot = now
        self._reset_window(now)

    def _best_sustained(self, now: float) -> float | None:
        while self._sustained and self._sustained[0][0] < now - MEMORY:
            self._sustained.popleft()
        return max((rate for _, rate in self._sustained), default=None)

    def _close_window(self, now: float) -> None:
        assert self.rate is not None
        elapsed = now - self._window_start
        accepted_rate = self._accepted / elapsed
        if self._refused:
            self._back_off(now, accepted_rate)
        else:
            self._probe(now)
        log.debug(
            "Rate window of %.2f s: %d sent, %d accepted, %d refused; pace now %.0f msg/s",
            elapsed,
            self._sent,
            self._accepted,
            self._refused,
            self.rate,
        )
        self._reset_window(now)

    def _back_off(self, now: float, accepted_rate: float) -> None:
        """The API pushed back: pace at what it sustained (never below half the pace in one window)."""
        assert self.rate is not None
        if accepted_rate > 0:
            self._sustained.append((now, accepted_rate))
        self.rate = max(MIN_RATE, accepted_rate * HEADROOM, self.rate * BACKOFF)
        self._probes = 0
        if 0 < self._largest_accepted < self._largest_sent / 2:  # bursts are small: smaller requests
            self.size_cap = self._largest_accepted
            self._size_cap_until = now + MEMORY

    def _probe(self, now: float) -> None:
        """No pushback: raise the pace if it was what held senders back."""
        assert self.rate is not None
        if self._waited < BINDING * self._reservations:
            return  # senders were slower than the pace (latency, a short queue): nothing to learn
        best = self._best_sustained(now)
        if best is not None and self.rate < best:
            self.rate = best
        else:
            self._probes += 1
            self.rate *= 1 + min(1.0, STEP * 2 ** (self._probes - 1))
