"""Adaptive pacing of sends once the API starts answering ``RATE_LIMIT``."""

from __future__ import annotations

import threading
import time
from collections import deque

#: Seconds of accepted messages the pacer measures the API's rate over.
WINDOW = 2.0
#: Send this much faster than the measured rate, so the API's bucket never idles: the few
#: messages it refuses are resent at once, and throughput stays at the API's limit.
HEADROOM = 1.05
#: A batch answered without ``RATE_LIMIT`` raises the pace by this factor (probing upwards).
PROBE = 1.02


class AdaptivePacer:
    """
    Shared by all send threads of one ``send_messages`` call.

    Until the first ``RATE_LIMIT`` nothing is paced. From then on, messages are let through at
    ``HEADROOM`` times the rate the API accepted over the last ``WINDOW`` seconds (a token bucket
    scheduled in virtual time), and every batch answered in full nudges the pace up by ``PROBE``.
    """

    def __init__(self, *, clock=time.monotonic, sleep=time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._accepted: deque[tuple[float, int]] = deque()
        self._started = clock()
        #: Messages per second, or ``None`` while unpaced.
        self.rate: float | None = None
        self._next_slot = 0.0

    def acquire(self, messages: int) -> None:
        """Wait until ``messages`` may be sent at the current pace."""
        with self._lock:
            if self.rate is None:
                return
            now = self._clock()
            start = max(now, self._next_slot)
            self._next_slot = start + messages / self.rate
            wait = start - now
        if wait > 0:
            self._sleep(wait)

    def record(self, accepted: int, rate_limited: bool) -> bool:
        """
        Note one answer. Returns whether a measured pace now applies (else back off blindly).

        :param accepted: Messages the answer accepted.
        :param rate_limited: Whether it refused some for ``RATE_LIMIT`` (or left them out).
        """
        with self._lock:
            now = self._clock()
            if accepted:
                self._accepted.append((now, accepted))
            while self._accepted and self._accepted[0][0] < now - WINDOW:
                self._accepted.popleft()
            if not rate_limited:
                if self.rate is not None:
                    self.rate *= PROBE
                return self.rate is not None
            span = min(WINDOW, max(now - self._started, 1e-3))
            measured = sum(n for _, n in self._accepted) / span
            if measured <= 0:
                return False
            self.rate = measured * HEADROOM
            return True
