"""
The rate controller: one per hook, shared by every request in flight, deciding *when* the next batch
may go and how many messages it may carry (the queue decides *which* go).

Until the API first pushes back (a ``RATE_LIMIT``, a message left out of an answer, a 429/503)
nothing is paced. From then on messages are let through at ``rate`` msg/s, one *slot* at a time and
just in time: a sender asks for a slot when it is ready, and a slot's size and the gap after it are
decided when the slot comes, at the pace of that moment. (Slots handed out ahead, one per sender,
kept an old pace for up to a second after it changed, so each revision acted a window late.) Each
gap is drawn evenly between ``1 - JITTER`` and ``1 + JITTER`` times its length, so that processes
sharing a key do not lock into one order of arrival.

Several processes sending on one key (mapped chunks, other DAGs) share it without talking to each
other. A token bucket gives each request what accumulated since the request before it, whoever sent
that one; so while every process asks for a little more than it gets, the key never idles, and a
process's share is set by how often it asks, not by how much. Hence these rules:

- **One tempo.** A slot holds :data:`BURST` seconds' worth of messages at the present pace, so every
  process asks at the same tempo (``1 / BURST`` requests a second) whatever its pace; only the size of
  its requests differs. A process that asks for more than the others gets little more per request,
  so a smaller part of each of its requests is accepted (on the fake clock, twice the pace of another
  process got 1.7 times its messages). Below :data:`SMALLEST` and above :data:`LARGEST`
  messages, a slot grows only as the square root of the pace: the tempo then grows with the pace too,
  but slower, so a bigger pace still gets a smaller part of each request accepted. (A request holds at
  least one message and at most a batch; with a tempo that grew as fast as the pace, as it did before
  1.8.0 once a request was full, any split of the key would stay as it was.)
- **Ask a little more than you got.** At the end of each *window* (at least :data:`WINDOW` seconds
  and :data:`MIN_ANSWERS` answers) the pace moves towards ``overask`` (1.3 for sends, :data:`SENDS`)
  times what the API accepted in it: :data:`RAISE` of the way up, :data:`LOWER` of the way down. The
  process whose requests had the smaller part accepted lowers its pace, the others raise theirs, so
  the shares drift towards equal (from a lopsided start to 70 % of an equal share each, on the fake
  clock, in 1-8 s at up to 1,500 msg/s, 12-19 s at 5,000 where requests are full) while all of them
  keep asking more than the key holds. When a sibling finishes, the others' requests, already bigger than what
  they got, take its share at once, and their paces follow within a window or two. A window in which
  every message was taken while the pace held senders back doubles the pace: there is room (the limit
  rose, or the other senders stopped).
- **A request taken whole hides how much more it could have carried.** A request the API cut short
  says how much the key had for it; one taken whole says only "at least this much". So when some of
  a window's requests went through whole, what was accepted understates what was on offer, most of
  all just after a sibling finished or for a process that starts with a crumb of the key. For sends
  (:data:`SENDS`) the target is raised by the square root of the window's answers per answer cut
  short: a window with a quarter of its requests cut aims twice as high, one with all of them cut as
  before. (On the fake clock this brought the survivors back to 90 % of the key within 1 s of a
  sibling's end in 143 of 144 campaigns, the other in 1.05 s, where 1.8.0 took up to 1.75 s, and
  halved the time a lopsided split takes to even out; the price is more refusals. The full ratio,
  answers per cut, doubled the refusals for no better reclaim.)
- **Above one tempo, a smaller margin.** Once a process's slots grow only as the square root of its
  pace, or are full batches, its tempo follows its pace again, and so does its share of the key. So
  for sends the margin of ``overask`` shrinks in proportion to the tempo above one slot every
  :data:`BURST` seconds: at three times that tempo (full batches of 100 at 6,000 msg/s) the pace aims
  10 % above what was accepted, not 30 %. The process with the higher tempo gives ground, and one
  alone still asks more than it gets. (On the fake clock, a second process joining a first at
  5,000 msg/s got at least 47 % of an equal share in every 5 s window instead of 34 %.)

The price: while the key is the limit, refused messages. On the sandbox a single process at 1,500
and 5,000 msg/s had 300-470 messages refused per 1,000 accepted over 12 s runs, and at 100 and
400 msg/s, where a request holds a few messages, 470-970 (up to 1,350 over 5 s runs). Refused messages go back to the front of the queue and are
sent again: nothing is lost or sent twice.

The first pace, at the first pushback, is what the API accepted over the last second, and at least
one full request per second (a refusal can arrive before the acceptances of its own burst); answers
to requests sent before it are ignored, so the server's initial burst (a full token bucket) is never
measured as its rate. After a window in which the API accepted nothing at all (another client
drained the key), the first window with acceptances returns at once to the best rate the API
sustained for this process in the last :data:`MEMORY` seconds: a drain is over in a window, not in a
climb (meanwhile a send's pace falls by :data:`LOWER` a window, a poll's drops to :data:`MIN_RATE`
at once: one request a second, a probe). If the API cut every request short at one size for :data:`SHORT_WINDOWS` windows in a row, its
burst allowance is small: requests shrink to that size, for :data:`MEMORY` seconds (then the full size
is tried again). (Cut at sizes that vary, requests are sharing a token bucket; shrinking one process's
requests then would only raise its tempo, and with it its share of the key.)

With ``max_rate`` (the user's ceiling) pacing starts at once, at the ceiling, and no rule raises the
pace above it; at the ceiling the gaps and slot sizes are exact, so no window holds more than the
ceiling allows plus one slot. (Jitter spreads a pace the rules chose; a ceiling the user chose is a
promise.) Below what the API allows the rules never act, so k processes with ``limit / k`` each split
the key evenly, and nothing is refused.

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
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: Shortest window over which a rate is measured (seconds).
WINDOW = 0.5
#: Fewest answers a window needs before it closes (at low rates, windows last longer).
MIN_ANSWERS = 2
#: The share of the distance to ``overask`` x accepted that the pace moves up in one window.
RAISE = 0.8
#: The share of that distance it moves down in one window (slowly: a window's count is noisy).
LOWER = 0.15
#: How long small request sizes, and the best sustained rate, are remembered (seconds).
MEMORY = 60.0
#: The slowest pace: one message a second, a probe that notices when the API takes messages again.
MIN_RATE = 1.0
#: A paced request carries at most this many seconds' worth of messages: the tempo at which every
#: process asks, the same for all of them, until a request holds a full batch.
BURST = 0.05
#: Between these many messages a slot holds :data:`BURST` seconds' worth; beyond them it grows or shrinks only
#: as the square root of the pace (see :meth:`RateController._request_size`).
SMALLEST = 2
LARGEST = 50
#: The pace "held senders back" in a window when at least this share of their slots had a sender waiting.
BINDING = 0.5
#: Windows in a row in which every request was cut short at one size before requests shrink to it.
SHORT_WINDOWS = 4
#: Each gap between slots is drawn evenly between ``1 - JITTER`` and ``1 + JITTER`` times its length.
JITTER = 0.3


@dataclass(frozen=True)
class Rules:
    """
    How the pace follows the answers (see the module docstring).

    :param overask: Offer this many times what the API accepted.
    :param far: A pace more than this many times that target drops to it at once (an overshoot);
        ``None``: never, the pace always moves by ``RAISE`` or ``LOWER`` of the way.
    :param room_after: Windows in a row with every message taken before the pace doubles.
    :param credit_whole: Credit requests taken whole with more than they carried: the target grows by
        the square root of answers per answer cut short (see the module docstring).
    :param taper: Above one tempo, offer less above what was accepted (see the module docstring).
    """

    overask: float
    far: float | None
    room_after: int
    credit_whole: bool = False
    taper: bool = False


#: Sends: every process asks a little more than it gets, so the API's token bucket never idles and a
#: process that asks for more gets a smaller part of each request accepted; requests taken whole are
#: credited, and above one tempo the margin shrinks (see above).
SENDS = Rules(overask=1.3, far=None, room_after=1, credit_whole=True, taper=True)
#: Status polls, one request at a time: a refused status request is a whole request to try again (after
#: a backoff, when refusals go on), not messages riding along. So they ask less above what was served,
#: drop an overshoot at once, and double only after a second window in a row with room.
POLLS = Rules(overask=1.1, far=1.5, room_after=2)


class RateController:
    """
    Paces every sender of one hook; thread-safe.

    :param clock: Monotonic seconds (a fake clock in tests).
    :param rng: Draws the gaps' jitter (a seeded one in tests; by default, a new unseeded one).
    :param max_rate: The most messages per second, ever: paced at it from the first request (no
        unpaced burst), and the rules below never raise the pace above it. ``None``: no ceiling.
    :param rules: How the pace follows the answers: :data:`SENDS` (messages) or :data:`POLLS` (requests).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        *,
        max_rate: float | None = None,
        rules: Rules = SENDS,
    ) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self.max_rate = max_rate
        self._rules = rules
        #: Messages per second, or ``None`` while unpaced.
        self.rate: float | None = max_rate
        self._started = clock()
        self._unpaced: deque[tuple[float, int]] = deque()
        #: The most messages a paced request may carry, when the API's bursts proved small.
        self.size_cap: int | None = None
        self._size_cap_until = 0.0
        self._largest_request = 1
        self._short_windows = 0
        #: Windows in a row in which every message was taken while the pace held senders back.
        self._clean = 0
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
        #: Answers in which the API refused at least one message (the rest it took whole).
        self._cut = 0
        #: What the API took of each request it cut short (an empty request aside), fewest and most.
        self._cut_to: tuple[int, int] | None = None
        self._whole = False

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
            allowed = min(wanted, self._request_size(), self.size_cap or wanted)
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
            self._cut += bool(refused)
            self._whole = self._whole or (accepted == sent and not refused)
            if refused and accepted:
                fewest, most = self._cut_to or (accepted, accepted)
                self._cut_to = (min(fewest, accepted), max(most, accepted))
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

    @property
    def _at_ceiling(self) -> bool:
        """Paced at ``max_rate``: a promise, so slots and gaps are exact (no dithering, no jitter)."""
        return self.rate == self.max_rate

    def _size_at_pace(self) -> float:
        """
        Messages a slot holds at the present pace, on average: :data:`BURST` seconds' worth between
        :data:`SMALLEST` and :data:`LARGEST`; below or above them, the geometric mean of that worth and
        the bound passed (so the size grows as the square root of the pace).
        """
        assert self.rate is not None
        size = self.rate * BURST
        if size < SMALLEST:
            return math.sqrt(size * SMALLEST)
        if size > LARGEST:
            return math.sqrt(size * LARGEST)
        return size

    def _request_size(self) -> int:
        """
        :meth:`_size_at_pace`, rounded up or down at random, in proportion, so that a slot of 1.4
        messages is one of 1 or 2 and the tempo stays what the size implies.
        """
        size = self._size_at_pace()
        if self._at_ceiling:
            return max(1, int(size))  # a ceiling's slots are exact, like its gaps
        return max(1, math.floor(size + self._rng.random()))

    def _overask(self) -> float:
        """
        The rules' ``overask``; with ``taper``, its margin shrinks in proportion once the tempo is above
        one slot every :data:`BURST` seconds (requests that are full, or grow only as the square root).
        """
        assert self.rate is not None
        if not self._rules.taper:
            return self._rules.overask
        size = max(1.0, min(self._size_at_pace(), self._largest_request, self.size_cap or math.inf))
        tempo = self.rate / size
        return 1 + (self._rules.overask - 1) * min(1.0, 1 / (BURST * tempo))

    def _jitter(self) -> float:
        """A gap's factor: drawn at a pace the rules chose; exactly 1 at ``max_rate``, a ceiling never exceeded."""
        if self._at_ceiling:
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
        binding = self._waited >= BINDING * self._reservations
        if self._refused or binding:
            if self._refused and accepted_rate > 0:
                self._sustained.append((now, accepted_rate))
            if self._refused and not self._accepted:
                self._drained = True  # until the next window with acceptances
            target = self._overask() * accepted_rate
            if self._rules.credit_whole and self._refused:
                target *= math.sqrt(self._answers / self._cut)
            if target > self.rate:
                gain = RAISE
            elif self._rules.far is not None and self.rate > self._rules.far * target:
                gain = 1.0  # an overshoot (or nothing served): down to the target at once
            else:
                gain = LOWER
            self.rate = max(MIN_RATE, self.rate + gain * (target - self.rate))
            self._clean = self._clean + 1 if not self._refused else 0
            if self._clean >= self._rules.room_after:  # every message taken while the pace held senders back: room
                self.rate = max(self.rate, 2 * old_rate)
            if self._drained and self._accepted:
                self.rate = max(self.rate, self._best_sustained(now))
                self._drained = False
            self._note_request_sizes(now)
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

    def _note_request_sizes(self, now: float) -> None:
        """
        A window in which no request went through whole, and the API cut every request short at the same
        size (a token bucket shared with others cuts them at whatever accumulated since the request before,
        which varies from one to the next): after :data:`SHORT_WINDOWS` in a row, the API's bursts are
        small, and requests shrink to that size.
        """
        fewest, most = self._cut_to or (0, 0)
        if self._whole or most < 2 * SMALLEST or most - fewest > max(1, most // 10):
            self._short_windows = 0  # a request whole, cuts that varied, or too small to tell (a message or two)
            return
        self._short_windows += 1
        if self._short_windows >= SHORT_WINDOWS:
            self.size_cap = most
            self._size_cap_until = now + MEMORY

    def _respace(self, old_rate: float) -> None:
        """A new pace applies from the next slot: the gap after the last slot stretches or shrinks to it."""
        assert self.rate is not None
        start, _ = self._last_slot
        if start >= self._paced_since and self.rate != old_rate:
            self._next_slot = start + (self._next_slot - start) * old_rate / self.rate

    def _best_sustained(self, now: float) -> float:
        while self._sustained and self._sustained[0][0] < now - MEMORY:
            self._sustained.popleft()
        return max((rate for _, rate in self._sustained), default=MIN_RATE)
