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
  process asks at the same tempo (``1 / BURST`` slots a second) whatever its pace; only the size of
  its slots differs. A process that asks for more than the others gets little more per slot, so a
  smaller part of each of its slots is accepted (on the fake clock, twice the pace of another process
  got 1.7 times its messages). Below :data:`SMALLEST` messages a slot grows only as the square root
  of the pace.
- **A slot bigger than a request goes as one volley** (sends, :data:`SENDS`). A request carries at
  most a batch; a bigger slot is split into equal requests that go at once, one per free sender, and
  the API's token bucket meets them as one arrival: the first takes what accumulated since the
  request before it, the next what is left. So a process sending full batches keeps the common
  tempo. (Up to 1.9.0 a slot was one request, and beyond :data:`LARGEST` messages it grew only as the
  square root of the pace, up to a batch: a process with a big pace asked more often than the
  others, and its share of the key grew with its pace; on the fake clock, a process joining another
  at 5,000 msg/s held 47 % of an equal share. Status polls, one request at a time, keep that rule.)
- **Ask a little more than you got.** At the end of each *window* (at least :data:`WINDOW` seconds
  and :data:`MIN_ANSWERS` answers) the pace moves towards ``overask`` (1.3 for sends, :data:`SENDS`)
  times what the API accepted in it: :data:`RAISE` of the way up, :data:`LOWER` of the way down. The
  process whose slots had the smaller part accepted lowers its pace, the others raise theirs, so
  the shares drift towards equal (from a lopsided start to 70 % of an equal share each within 5 s,
  on the fake clock, at 400-5,000 msg/s and 2-8 processes) while all of them keep asking more than
  the key holds. When a sibling finishes, the others' slots, already bigger than what they got, take
  its share at once, and their paces follow within a window or two.
- **Room is taken in tenths of a second.** A window in which every message was taken while the pace
  held senders back doubles the pace: there is room (the limit rose, or the other senders stopped).
  While there is room (the last window had it, or this one has so far) a window closes after
  :data:`CLIMB_WINDOW`, so the pace doubles every quarter second. A climb runs past the key when its
  token bucket refilled meanwhile (a sibling finished while this process was still slow), so in the
  first cut windows after a climb, a target below half the pace (more than the last doubling past
  what the API took) drops the pace there at once, instead of easing down by :data:`LOWER`. (Added
  in 1.11.0. On the fake clock, a process joining a busy key 3 s late, its
  sibling finishing 0.8 s later, climbed from 100 msg/s for up to 2.3 s at 5,000 msg/s, then eased
  down from 5 times the key over 7 s: 0.85-1.35 messages refused per message of its chunk, over four
  seeds. Now it takes the key within 0.75 s, with 0.54-0.77 refused per message. Status polls
  (:data:`POLLS`) follow both rules too: they double after two windows with room, not one.)
- **The first climb quadruples.** Until a window the API cut short aims at or below the pace (the
  key's edge found), room multiplies the pace by :data:`FIRST_CLIMB`, not 2: the first pace
  is a floor (one request a second, or what the unpaced burst got), and a process whose first
  requests met a busy key starts there, 50 times below the key at 5,000 msg/s. And a pace that falls
  does not make the senders wait out the last slot, sized at the old pace, at the new one (see
  :meth:`RateController._respace`): after a climb's drop the key would sit idle. (Added in 1.12.0.
  On the fake clock, such a process whose sibling finishes 0.35-0.4 s after its first pushback, as on
  the sandbox, took the key back 0.6-1.25 s after at 5,000 msg/s; now 0.35-0.7 s. A process alone
  climbing from 100 msg/s through a full bucket finished its 8 s of messages 0.8-1.4 s after the bound
  at 1,500 and 5,000 msg/s, with 0.56-1.13 refused per message; now 0.45-0.8 s after, with 0.42-0.76.
  The first cut window's target still counts the bucket's last tokens, so for a second it asks up to
  twice the key, easing down by :data:`LOWER`.)
- **A slot taken whole hides how much more it could have carried.** A slot the API cut short (it
  refused a message of any of its requests) says how much the key had for it; one taken whole says
  only "at least this much". So when some of a window's slots went through whole, what was accepted
  understates what was on offer, most of all just after a sibling finished or for a process that
  starts with a crumb of the key. For sends (:data:`SENDS`) the target is raised by the square root
  of the window's slots per slot cut short: a window with a quarter of its slots cut aims twice as
  high, one with all of them cut as before. An answer's slot is the last one that began before its
  request went out. (Added in 1.9.0, counting requests: on the fake clock it brought the survivors
  back to 90 % of the key within 1 s of a sibling's end in 143 of 144 campaigns, the other in
  1.05 s, where 1.8.0 took up to 1.75 s, and halved the time a lopsided split takes to even out; the
  price is more refusals. The full ratio, slots per cut, doubled the refusals for no better reclaim.)
- **Above one request a slot, a smaller margin** (sends). The margin of ``overask`` shrinks in
  proportion to the requests a slot needs beyond one every :data:`BURST` seconds: a slot of three
  full batches (6,000 msg/s) aims 10 % above what was accepted, not 30 %. The process with the
  bigger slots gives ground sooner, and one alone, with fewer refusals, still asks more than it gets.
  The same holds when the API's bursts proved small (below), where a slot is one request of that
  size and more of them go a second.
- **A process that ran ahead of itself lately gives way** (sends). Which process a token bucket's
  next tokens go to is partly luck, most of all when a request holds a message or two, and a run of
  bad luck costs a process its share for seconds. While the API refuses it messages (the key is
  contested), a process whose acceptances over the last :data:`EVEN_SHORT` seconds ran above its
  average over the last :data:`EVEN_LONG` stretches its gaps by that ratio (at most
  :data:`EVEN_MOST` times), so the siblings it ran ahead of catch up. It never shortens a gap: a
  process behind its own average cannot tell bad luck from a sibling that just joined, and asking
  more often would crowd the newcomer out (see :meth:`RateController._ahead`). (Added in 1.13.0. On
  the fake clock, over 12 seeds of the jitter and latencies 0 and 20 ms, the campaigns' smallest
  share of an equal split reached 70 % in 474 of 480, the worst 64 % and Jain's index 0.939 or more,
  where 1.12.0 had 465, 51 % and 0.917; 8 processes at 100 msg/s fell to 43 % of an equal share, now
  62 %; and fewer messages are refused.)

The price: while the key is the limit, refused messages. On the sandbox a single process at 1,500
and 5,000 msg/s had 230-830 messages refused per 1,000 accepted over 12 s runs, and at 100 and
400 msg/s, where a request holds a few messages, 570-1,160 (up to 1,350 over 5 s runs). Refused
messages go back to the front of the queue and are sent again: nothing is lost or sent twice.

The first pace, at the first pushback, is what the API accepted over the last second, and at least
one full request per second (a refusal can arrive before the acceptances of its own burst); answers
to requests sent before it are ignored, so the server's initial burst (a full token bucket) is never
measured as its rate. After a window in which the API accepted nothing at all (another client
drained the key), the first window with acceptances returns at once to the best rate the API
sustained for this process in the last :data:`MEMORY` seconds: a drain is over in a window, not in a
climb (meanwhile a send's pace falls by :data:`LOWER` a window, a poll's drops to :data:`MIN_RATE`
at once: one request a second, a probe). If the API cut every request short at one size for :data:`SHORT_WINDOWS` windows in a row, its
burst allowance is small: requests shrink to that size, a slot holds one, for :data:`MEMORY` seconds
(then the full size is tried again). (Cut at sizes that vary, requests are sharing a token bucket; shrinking one process's
requests then would only raise its tempo, and with it its share of the key.)

With ``max_rate`` (the user's ceiling) pacing starts at once, at the ceiling, and no rule raises the
pace above it; at the ceiling the gaps and slot sizes are exact and a slot is one request (no volley),
so no window holds more than the ceiling allows plus one request. (Jitter spreads a pace the rules chose; a ceiling the user chose is a
promise.) Below what the API allows the rules never act, so k processes with ``limit / k`` each split
the key evenly, and nothing is refused.

A 429/503 with ``Retry-After`` also pauses every sender until then. The controller never sleeps: it
tells the caller how long to wait, so it runs on a fake clock in tests.
"""

from __future__ import annotations

import bisect
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
#: Shortest window while there is room (the window before had every message taken while the pace held
#: senders back, or this one has had so far): a climb into room is over in tenths of a second.
CLIMB_WINDOW = 0.25
#: After a climb into room, the cut windows that may drop the pace at once (see :meth:`RateController._climb_overshot`).
CLIMB_SETTLES = 2
#: Until a window the API cut short aims at or below the pace, a window with room multiplies the pace by this, not 2:
#: the first pace is a floor (one request a second, or what the burst got), not a measure of the key.
FIRST_CLIMB = 4
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
#: A slot holds this many seconds' worth of messages: the tempo at which every process asks, the
#: same for all of them.
BURST = 0.05
#: From these many messages a slot holds :data:`BURST` seconds' worth; below them it shrinks only as the
#: square root of the pace (see :meth:`RateController._size_at_pace`).
SMALLEST = 2
#: Without volleys (status polls), beyond these many messages a slot grows only as the square root of the pace.
LARGEST = 50
#: The pace "held senders back" in a window when at least this share of their slots had a sender waiting.
BINDING = 0.5
#: Windows in a row in which every request was cut short at one size before requests shrink to it.
SHORT_WINDOWS = 4
#: How many slots' starts are kept to tell which slot an answer belongs to (minutes of them).
SLOTS_KEPT = 4096
#: Each gap between slots is drawn evenly between ``1 - JITTER`` and ``1 + JITTER`` times its length.
JITTER = 0.3
#: A process's acceptances over this many seconds, against its average over :data:`EVEN_LONG`, tell
#: whether it ran ahead of itself lately (see :meth:`RateController._ahead`).
EVEN_SHORT = 1.0
#: The span of that average (seconds).
EVEN_LONG = 4.0
#: A process that ran ahead stretches its gaps by that ratio, at most this many times.
EVEN_MOST = 2.0


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
    :param taper: Above one request a slot, offer less above what was accepted (see the module docstring).
    :param volleys: A slot bigger than a request goes as several requests at once (see the module docstring).
    :param even_out: A process that ran ahead of its own average lately, while refused, asks less often
        (see :meth:`RateController._ahead`).
    """

    overask: float
    far: float | None
    room_after: int
    credit_whole: bool = False
    taper: bool = False
    volleys: bool = False
    even_out: bool = False


#: Sends: every process asks a little more than it gets, so the API's token bucket never idles and a
#: process that asks for more gets a smaller part of each slot accepted; a slot bigger than a request
#: goes as one volley, slots taken whole are credited, above one request a slot the margin shrinks, and
#: a process that ran ahead of itself lately asks less often (see above).
SENDS = Rules(overask=1.3, far=None, room_after=1, credit_whole=True, taper=True, volleys=True, even_out=True)
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
        #: The pace doubled into room and has not settled since (see :meth:`_climb_overshot`): it may
        #: have climbed past the key, a token bucket having refilled while it climbed.
        self._climbed = False
        #: Windows the API cut short since that climb.
        self._cut_since_climb = 0
        #: A window the API cut short aimed at or below the pace: the key's edge is known (until then room
        #: multiplies the pace by :data:`FIRST_CLIMB`).
        self._edge_found = False
        self._paced_since = math.inf if max_rate is None else self._started
        self._next_slot = 0.0
        self._paused_until = 0.0
        #: The last slot handed out: when, and for how many messages (the next slot follows from it).
        self._last_slot = (self._started, 0)
        #: Of the last slot: messages not handed out yet, the most one request of it carries, its gap's jitter.
        self._slot_left = 0
        self._piece = 0
        self._slot_jitter = 1.0
        #: What the last taker got of the last slot (it may give back room of it, see :meth:`release`).
        self._last_piece = 0
        #: When recent slots began (the first is slot number ``_slots_forgotten``): an answer's slot.
        self._slot_starts: list[float] = []
        self._slots_forgotten = 0
        #: The thread that took the last slot: only it may give back room of it (see :meth:`release`).
        self._last_taker: int | None = None
        self._held = False
        self._sustained: deque[tuple[float, float]] = deque()
        self._drained = False
        #: Paced answers of the last :data:`EVEN_LONG` seconds (when, messages accepted), and their sum.
        self._recent: deque[tuple[float, int]] = deque()
        self._recent_accepted = 0
        #: Those of the last :data:`EVEN_SHORT` seconds (when, accepted, any refused), their sum and
        #: how many had a message refused: kept apart, so a slot reads them without a scan.
        self._lately: deque[tuple[float, int, bool]] = deque()
        self._lately_accepted = self._lately_refused = 0
        #: Since when answers are kept (a drain starts them again).
        self._recent_since = self._paced_since
        self._reset_window(self._started)

    def _reset_window(self, now: float) -> None:
        self._window_start = now
        self._sent = self._accepted = self._refused = self._answers = 0
        self._reservations = self._waited = 0
        #: The slots answered in this window, and those of them the API cut short (refused a message of).
        self._slots_answered: set[int] = set()
        self._slots_cut: set[int] = set()
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
            if self._slot_left <= 0:
                self._open_slot(now, wanted)
            allowed = min(wanted, self._slot_left, self._piece)
            self._slot_left -= allowed
            self._last_taker = threading.get_ident()
            self._last_piece = allowed
            self._next_slot = self._slot_end() if self._slot_left <= 0 else now  # the rest of a slot goes at once
            return allowed, 0.0

    def release(self, unused: int) -> None:
        """
        Give back room of the request this sender just took from a slot and did not use (the queue
        held fewer messages): the slot shrinks, and so does the gap after it. Once another sender took
        a request after it, the room is gone: given back then, it could shorten a gap already spent,
        and more than the pace could go out within it.
        """
        with self._lock:
            if self._last_taker != threading.get_ident():
                return
            if self.rate is not None and 0 < unused <= self._last_piece:
                start, total = self._last_slot
                self._last_slot = (start, total - unused)
                self._last_piece -= unused
                if self._slot_left <= 0:
                    self._next_slot = self._slot_end()

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
            self._remember(now, accepted, bool(refused))
            self._sent += sent
            self._accepted += accepted
            self._refused += refused
            self._answers += 1
            slot = self._slot_of(sent_at)
            self._slots_answered.add(slot)
            if refused:
                self._slots_cut.add(slot)
            self._whole = self._whole or (accepted == sent and not refused)
            if refused and accepted:
                fewest, most = self._cut_to or (accepted, accepted)
                self._cut_to = (min(fewest, accepted), max(most, accepted))
            if self._answers >= MIN_ANSWERS and now - self._window_start >= self._window_length():
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
        Messages a slot holds at the present pace, on average: :data:`BURST` seconds' worth from
        :data:`SMALLEST` on (without volleys, up to :data:`LARGEST`); below or above, the geometric mean
        of that worth and the bound passed (so the size grows as the square root of the pace).
        """
        assert self.rate is not None
        size = self.rate * BURST
        if size < SMALLEST:
            return math.sqrt(size * SMALLEST)
        if size > LARGEST and not self._rules.volleys:
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

    def _open_slot(self, now: float, wanted: int) -> None:
        """
        A new slot at ``now``: :meth:`_request_size` messages. With ``volleys`` it may hold more than one
        request (``wanted``) carries: it is split into equal requests that go at once, so the API's token
        bucket sees one arrival, and every process keeps one tempo whatever its pace.
        """
        size = self._request_size()
        if self._rules.volleys and self.size_cap is None and not self._at_ceiling:
            total = size
            self._piece = math.ceil(total / math.ceil(total / max(wanted, self._largest_request)))
        else:
            total = self._piece = min(size, wanted, self.size_cap or wanted)
        self._slot_left = total
        self._last_slot = (now, total)
        self._slot_starts.append(now)
        if len(self._slot_starts) > SLOTS_KEPT:
            del self._slot_starts[: SLOTS_KEPT // 2]
            self._slots_forgotten += SLOTS_KEPT // 2
        self._slot_jitter = self._jitter() * self._ahead(now)
        self._reservations += 1
        self._waited += self._held  # a sender waited for this slot: the pace held it back
        self._held = False

    def _ahead(self, now: float) -> float:
        """
        How far this process ran ahead of itself lately: what the API accepted of it over the last
        :data:`EVEN_SHORT` seconds, as a rate, over its average across the last :data:`EVEN_LONG`,
        between 1 and :data:`EVEN_MOST`. The gap after a slot stretches by it.

        Processes sharing a key get what a token bucket accumulated before each of their requests,
        so luck moves their shares from second to second; a process that has just been lucky gives
        way for a while, and its siblings make up their bad luck. It counts only while the API
        refused this process a message in the last :data:`EVEN_SHORT` seconds (the key is contested),
        and never shortens a gap: a process behind its own average may have a new sibling, and asking
        more often would crowd the newcomer out (a scratch version that did so cut a newcomer's share
        in its second 1.5 s from 95 % to 72 % of an equal one). ``1`` for polls, at ``max_rate``, and
        until :data:`EVEN_LONG` seconds of paced answers (since pacing began, or since the last drain).
        """
        if not self._rules.even_out or self._at_ceiling or now - self._recent_since < EVEN_LONG:
            return 1.0
        self._forget_lately(now)
        if not self._lately_refused or not self._recent_accepted:
            return 1.0
        ratio = (self._lately_accepted / EVEN_SHORT) / (self._recent_accepted / EVEN_LONG)
        return min(EVEN_MOST, max(1.0, ratio))

    def _remember(self, now: float, accepted: int, refused: bool) -> None:
        """Keep a paced answer for :meth:`_ahead` (the last :data:`EVEN_LONG` and :data:`EVEN_SHORT` seconds)."""
        self._recent.append((now, accepted))
        self._recent_accepted += accepted
        while self._recent[0][0] < now - EVEN_LONG:
            self._recent_accepted -= self._recent.popleft()[1]
        self._lately.append((now, accepted, refused))
        self._lately_accepted += accepted
        self._lately_refused += refused
        self._forget_lately(now)

    def _forget_lately(self, now: float) -> None:
        while self._lately and self._lately[0][0] < now - EVEN_SHORT:
            _, accepted, refused = self._lately.popleft()
            self._lately_accepted -= accepted
            self._lately_refused -= refused

    def _forget_recent(self, now: float) -> None:
        """A drain: the answers before it are no average to run ahead of; they are kept again from ``now``."""
        self._recent.clear()
        self._lately.clear()
        self._recent_accepted = self._lately_accepted = self._lately_refused = 0
        self._recent_since = now

    def _slot_of(self, sent_at: float) -> int:
        """The number of the slot a request sent at ``sent_at`` belonged to (-1: one too old to tell)."""
        index = bisect.bisect_right(self._slot_starts, sent_at) - 1
        return -1 if index < 0 else self._slots_forgotten + index

    def _slot_end(self) -> float:
        """When the slot after the last one comes: the last slot's messages at the pace, after it began."""
        assert self.rate is not None
        start, total = self._last_slot
        return start + total / self.rate * self._slot_jitter

    def _overask(self) -> float:
        """
        The rules' ``overask``; with ``taper``, its margin shrinks in proportion once requests go more
        often than one every :data:`BURST` seconds (slots of several requests, requests cut to the API's
        small bursts, or, without volleys, requests that grow only as the square root of the pace).
        """
        assert self.rate is not None
        if not self._rules.taper:
            return self._rules.overask
        size = max(1.0, min(self._size_at_pace(), self._largest_request, self.size_cap or math.inf))
        tempo = self.rate / size
        return 1 + (self._rules.overask - 1) * min(1.0, 1 / (BURST * tempo))

    def _climb_overshot(self, target: float) -> bool:
        """
        Note a cut window after a climb into room: ``True`` when its target is below half the pace, so
        the climb ran more than its last doubling past the key (a token bucket refilled while it
        climbed) and the pace drops to the target at once. The climb counts as settled after the
        :data:`CLIMB_SETTLES` th cut window, or later while each cut window keeps finding such a target.
        """
        assert self.rate is not None
        if not (self._climbed and self._refused):
            return False
        self._cut_since_climb += 1
        if 2 * target < self.rate:
            return True
        self._climbed = self._cut_since_climb < CLIMB_SETTLES
        return False

    def _gain(self, target: float) -> float:
        """
        The share of the way to ``target`` the pace moves at the end of a window in which the API cut
        requests short or the pace held senders back: :data:`RAISE` up, :data:`LOWER` down (at once
        below an overshoot, with the rules' ``far``).
        """
        assert self.rate is not None
        if target > self.rate:
            return RAISE
        if self._rules.far is not None and self.rate > self._rules.far * target:
            return 1.0  # an overshoot (or nothing served): down to the target at once
        return LOWER

    def _window_length(self) -> float:
        """
        :data:`WINDOW`; :data:`CLIMB_WINDOW` while there is room (the last window had it, or this one has
        had so far: nothing refused, the pace holding senders back), so a climb doubles the pace every
        quarter second.
        """
        room_so_far = not self._refused and self._reservations > 0 and self._held_back()
        return CLIMB_WINDOW if self._clean or room_so_far else WINDOW

    def _held_back(self) -> bool:
        """The pace held senders back this window: at least :data:`BINDING` of its slots had one waiting."""
        return self._waited >= BINDING * self._reservations

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
        self._paced_since = self._recent_since = now
        self._next_slot = now
        self._slot_left = 0
        self._reset_window(now)

    def _close_window(self, now: float) -> None:
        assert self.rate is not None
        old_rate = self.rate
        elapsed = now - self._window_start
        accepted_rate = self._accepted / elapsed
        if self._refused or self._held_back():
            if self._refused and accepted_rate > 0:
                self._sustained.append((now, accepted_rate))
            if self._refused and not self._accepted:
                self._drained = True  # until the next window with acceptances
                self._forget_recent(now)
            target = self._overask() * accepted_rate
            if self._rules.credit_whole and self._refused:
                target *= math.sqrt(len(self._slots_answered) / len(self._slots_cut))
            self._edge_found = self._edge_found or (bool(self._refused) and target <= self.rate)
            gain = 1.0 if self._climb_overshot(target) else self._gain(target)
            self.rate = max(MIN_RATE, self.rate + gain * (target - self.rate))
            self._clean = self._clean + 1 if not self._refused else 0
            if self._clean >= self._rules.room_after:  # every message taken while the pace held senders back: room
                self.rate = max(self.rate, (2 if self._edge_found else FIRST_CLIMB) * old_rate)
                self._climbed, self._cut_since_climb = True, 0
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
        """
        A new pace applies from the next slot: the gap after the last slot stretches or shrinks to it. A
        lower pace stretches it no further than a slot of the new pace would take (and never below the old
        gap, so no faster than the old pace): the pace falls because the API refused messages or took
        less than was offered, so waiting out the last slot, sized at the old pace, at the new one would
        leave the key idle (after a climb's drop from 6,400 to 470 msg/s, for 0.7 s).
        """
        assert self.rate is not None
        start, _ = self._last_slot
        if start >= self._paced_since and self.rate != old_rate and self._slot_left <= 0:
            gap = self._next_slot - start
            stretched = gap * old_rate / self.rate
            if self.rate < old_rate:
                stretched = min(stretched, max(gap, self._size_at_pace() / self.rate * self._slot_jitter))
            self._next_slot = start + stretched

    def _best_sustained(self, now: float) -> float:
        while self._sustained and self._sustained[0][0] < now - MEMORY:
            self._sustained.popleft()
        return max((rate for _, rate in self._sustained), default=MIN_RATE)
