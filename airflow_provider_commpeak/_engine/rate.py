"""
The rate controller: one per hook, shared by every request in flight, deciding *when* the next batch
may go (the queue decides *what* goes).

Until the API first pushes back (a ``RATE_LIMIT``, a message left out of an answer, a 429/503)
nothing is paced. From then on messages are let through at ``rate`` msg/s, one *slot* at a time and
just in time: a sender asks for a slot when it is ready, and a slot's size and the gap after it are
decided when the slot comes, at the pace of that moment. (Slots handed out ahead, one per sender,
kept an old pace for up to a second after it changed, so each revision acted a window late.) Each
gap is drawn evenly between ``1 - JITTER`` and ``1 + JITTER`` times its length: a token bucket hands
each request what accumulated since the request before it, whoever sent that one, so processes
locked into one order of arrival would split the key by their places in it, not by their paces.

``rate`` is revised at the end of each *window* (at least :data:`WINDOW` seconds and
:data:`MIN_ANSWERS` answers), by rules from congestion control, so that several processes sending
on one key (mapped chunks, other DAGs) share it without talking to each other:

- **congestion** (more than :data:`TOLERATED` of the window's messages pushed back): multiplicative
  decrease to :data:`DECREASE` times the pace, or further, to :data:`HEADROOM` times what the API
  accepted, when the pace was far above it (never below :data:`BACKOFF` times the pace in one
  window, so a short drain by another client does not throw the pace to the floor). When the API
  took at least all the pace offered, the refusals are the leftovers of an earlier burst and the
  pace holds. The first window starts at the first pushback and ignores answers to requests sent before it, so the
  server's initial burst (a full token bucket) is never measured as its rate.
- **room** (little or no pushback, and the pace was what held senders back): additive increase of
  :data:`ADDITIVE` of a full request per window, a step that doubles for each such window in a row
  without any pushback (spare room: a sibling finished, another client stopped draining the key, or
  the limit rose), so the room is found within a second or two. Every process on the key adds the
  same step and takes the same share off at a congestion, so a bigger share shrinks more: shares
  drift towards equal (a multiplicative increase would keep them as unequal as they started).

After a window in which the API accepted nothing at all (another client drained the key), the
first window with room returns at once to the best rate the API sustained for this process in the
last :data:`MEMORY` seconds: a drain is over in a window, not in a climb.

The first pace, at the first pushback, is what the API accepted over the last second, and at least
one full request per second (a refusal can arrive before the acceptances of its own burst).

Request size follows too: a paced request carries at most :data:`BURST` seconds' worth of messages;
and if, in a window with pushback, no request went through whole although the pace was at most
:data:`OVERDRIVE` times what the API accepted, the API's burst allowance is small: requests shrink to
what the best one got accepted, for :data:`MEMORY` seconds (then the full size is tried again). A
pace far above what the API took leaves every request short by itself (too many requests, not too
big ones); shrinking them then would only multiply them, and on a key shared with other processes
more, smaller requests take a bigger share of it.

Refused messages cost only a request: they go back to the front of the queue. So the rules err on
the side of offering a little more than the limit (the API's token bucket then never idles) rather
than less.

With ``max_rate`` (the user's ceiling) pacing starts at once, at the ceiling, and no rule raises the
pace above it; at the ceiling the gaps are exact, so no window holds more than the ceiling allows plus
one slot. (Jitter spreads a pace the rules chose; a ceiling the user chose is a promise.) Below what
the API allows the rules never act, so k processes with ``limit / k`` each split the key evenly.

A 429/503 with ``Retry-After`` also pauses every sender until then. The controller never sleeps: it
tells the caller how long to wait, so it runs on a fake clock in tests.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Shortest window over which a rate is measured (seconds).
WINDOW = 0.5
#: Fewest answers a window needs before it closes (at low rates, windows last longer).
MIN_ANSWERS = 2
#: Pace this much above the measured rate while the API pushes back.
HEADROOM = 1.05
#: The most the pace drops in one window.
BACKOFF = 0.5
#: Multiplicative decrease: the pace after a window of congestion, as a share of the pace before.
DECREASE = 0.7
#: The share of a window's messages the API may push back without it counting as congestion.
TOLERATED = 0.02
#: Additive increase per window, in full requests per :data:`WINDOW` (the same for every process).
ADDITIVE = 0.5
#: The additive step doubles for each window in a row without any pushback, at most this many times.
MAX_DOUBLINGS = 8
#: How long small request sizes, and the best sustained rate, are remembered (seconds).
MEMORY = 60.0
#: The slowest pace: one message a second, a probe that notices when the API takes messages again.
MIN_RATE = 1.0
#: A paced request carries at most this many seconds' worth of messages, so sends stay smooth.
BURST = 0.25
#: The pace "held senders back" in a window when at least this share of their slots had a sender waiting.
BINDING = 0.5
#: Requests shrink to what the API took of each only while the pace was at most this many times what it
#: accepted: further above, every request falls short because there are too many of them, not because
#: they are too big.
OVERDRIVE = 2.0
#: Each gap between slots is drawn evenly between ``1 - JITTER`` and ``1 + JITTER`` times its length.
JITTER = 0.3


class RateController:
    """
    Paces every sender of one hook; thread-safe.

    :param clock: Monotonic seconds (a fake clock in tests).
    :param rng: Draws the gaps' jitter (a seeded one in tests; by default, a new unseeded one).
    :param max_rate: The most messages per second, ever: paced at it from the first request (no
        unpaced burst), and the rules below never raise the pace above it. ``None``: no ceiling.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        *,
        max_rate: float | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self.max_rate = max_rate
        #: Messages per second, or ``None`` while unpaced.
        self.rate: float | None = max_rate
        self._started = clock()
        self._unpaced: deque[tuple[float, int]] = deque()
        #: The most messages a paced request may carry, when the API's bursts proved small.
        self.size_cap: int | None = None
        self._size_cap_until = 0.0
        self._largest_request = 1
        self._clear_windows = 0
        self._paced_since = math.inf if max_rate is None else self._started
        self._next_slot = 0.0
        self._paused_until = 0.0
        #: The last slot handed out: when, and for how many messages (the next slot follows from it).
        self._last_slot = (self._started, 0)
        #: The thread that took the last slot: only it may give back room of it (see :meth:`release`).
        self._last_taker: int | None = None
        self._held = False
        self._sustained: deque[tuple[float, float]] = deque()
        self._drained = False
        self._reset_window(self._started)

    def _reset_window(self, now: float) -> None:
        self._window_start = now
        self._sent = self._accepted = self._refused = self._answers = 0
        self._reservations = self._waited = 0
        self._largest_sent = self._largest_accepted = 0

    # -- senders ask ---------------------------------------------------------------------------------

    def reserve(self, wanted: int) -> tuple[int, float]:
        """
        Ask for a slot for up to ``wanted`` messages.

        :returns: ``(messages, 0)``: send at most ``messages`` now; or ``(0, wait)``: the next slot (or
            the end of a pause) is ``wait`` seconds away, ask again then.
        """
        with self._lock:
            now = self._clock()
            self._largest_request = max(self._largest_request, wanted)
            start = max(now, self._paused_until)
            if self.rate is not None:
                start = max(start, self._next_slot)
            if start > now:
                self._held = True
                return 0, start - now
            if self.rate is None:
                return wanted, 0.0
            if self.size_cap is not None and now >= self._size_cap_until:
                self.size_cap = None
            allowed = min(wanted, max(1, int(self.rate * BURST)), self.size_cap or wanted)
            self._last_slot = (now, allowed)
            self._last_taker = threading.get_ident()
            self._next_slot = now + allowed / self.rate * self._jitter()
            self._reservations += 1
            self._waited += self._held  # a sender waited for this slot: the pace held it back
            self._held = False
            return allowed, 0.0

    def release(self, unused: int) -> None:
        """
        Give back room of the slot this sender just took and did not use (the queue held fewer
        messages). Once another sender took a slot after it, the room is gone: given back then, it would
        shorten the gap after that later slot, and more than the pace could go out within it.
        """
        with self._lock:
            start, allowed = self._last_slot
            if self._last_taker != threading.get_ident():
                return
            if self.rate is not None and 0 < unused <= allowed:
                used = allowed - unused
                self._last_slot = (start, used)
                self._next_slot = start + (self._next_slot - start) * used / allowed

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

    def raise_pace(self, rate: float) -> None:
        """Pace at no less than ``rate`` from now (a caller's better first guess; no effect while unpaced)."""
        with self._lock:
            if self.max_rate is not None:
                rate = min(rate, self.max_rate)
            if self.rate is not None and rate > self.rate:
                old_rate, self.rate = self.rate, rate
                self._respace(old_rate)

    def pause(self, seconds: float) -> None:
        """
        Hold every sender for ``seconds`` (a 429/503's ``Retry-After``, or a backoff). A pause alone
        does not start pacing: refusals recorded by :meth:`record` do.
        """
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    # -- internals -----------------------------------------------------------------------------------

    def _jitter(self) -> float:
        """A gap's factor: drawn at a pace the rules chose; exactly 1 at ``max_rate``, a ceiling never exceeded."""
        if self.rate == self.max_rate:
            return 1.0
        return self._rng.uniform(1 - JITTER, 1 + JITTER)

    def _start_pacing(self, now: float) -> None:
        """First pushback: start from the last second's acceptances (revised at the first window's end)."""
        last_second = sum(n for t, n in self._unpaced if t >= now - 1.0)
        if now - self._started >= 2.0 and last_second:
            self._sustained.append((now, last_second))  # a rate held for a while, not a burst
        self.rate = max(MIN_RATE, self._largest_request, last_second)
        self._unpaced.clear()
        log.debug("First pushback: pacing at %.0f msg/s", self.rate)
        self._paced_since = now
        self._next_slot = now
        self._reset_window(now)

    def _close_window(self, now: float) -> None:
        assert self.rate is not None
        old_rate = self.rate
        elapsed = now - self._window_start
        accepted_rate = self._accepted / elapsed
        if self._refused > TOLERATED * self._sent:
            self._decrease(now, accepted_rate)
            self._clear_windows = 0
        elif self._waited >= BINDING * self._reservations:  # the pace held senders back: raise it
            doublings = min(self._clear_windows, MAX_DOUBLINGS) if not self._refused else 0
            self.rate += ADDITIVE * self._largest_request / WINDOW * 2**doublings
            if self._drained:  # the first room after a drain: back to what the API sustained before it
                self.rate = max(self.rate, self._best_sustained(now))
                self._drained = False
            self._clear_windows = 0 if self._refused else self._clear_windows + 1
        # else: senders were slower than the pace (latency, a short queue): nothing learnt
        if self.max_rate is not None:
            self.rate = min(self.rate, self.max_rate)
        log.debug(
            "Rate window of %.2f s: %d sent, %d accepted, %d refused; pace now %.0f msg/s",
            elapsed,
            self._sent,
            self._accepted,
            self._refused,
            self.rate,
        )
        self._reset_window(now)
        self._respace(old_rate)

    def _respace(self, old_rate: float) -> None:
        """A new pace applies from the next slot: the gap after the last slot stretches or shrinks to it."""
        assert self.rate is not None
        start, _ = self._last_slot
        if start >= self._paced_since and self.rate != old_rate:
            self._next_slot = start + (self._next_slot - start) * old_rate / self.rate

    def _decrease(self, now: float, accepted_rate: float) -> None:
        """Congestion: multiplicative decrease, further when the pace was far above what the API took."""
        assert self.rate is not None
        if accepted_rate > 0:
            self._sustained.append((now, accepted_rate))
        if accepted_rate == 0:
            self._drained = True  # until the next window with room
        pace = self.rate
        if self.rate > accepted_rate * HEADROOM:  # else the API took all the pace offered: leftovers of a burst
            measured = max(accepted_rate * HEADROOM, self.rate * BACKOFF)
            self.rate = max(MIN_RATE, min(self.rate * DECREASE, measured))
        if 0 < self._largest_accepted < self._largest_sent and pace <= OVERDRIVE * accepted_rate:
            # No request went through whole, though the pace was not far above what the API took (which
            # alone would leave each request short): the API's bursts are small. Smaller requests.
            self.size_cap = self._largest_accepted
            self._size_cap_until = now + MEMORY

    def _best_sustained(self, now: float) -> float:
        while self._sustained and self._sustained[0][0] < now - MEMORY:
            self._sustained.popleft()
        return max((rate for _, rate in self._sustained), default=MIN_RATE)
