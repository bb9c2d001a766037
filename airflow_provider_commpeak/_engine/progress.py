"""What a user sees in the task log while a send runs: one line every few seconds, one at the end."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from airflow_provider_commpeak._engine.report import NOT_FAILURES, MessageResult, describe_counts

#: Seconds between two progress lines.
INTERVAL = 10.0


class SendProgress:
    """
    Counts settled messages and logs a progress line at most every :data:`INTERVAL` seconds.

    ``Sending: 4,000/10,000 done (3,990 accepted, 10 failed (10 INVALID_RECIPIENT)), 512 msg/s,
    about 12 s left``. Not thread-safe on its own: the pipeline calls it under its lock.

    :param total: Messages in the send (settled earlier ones included).
    :param log: Where the lines go.
    :param clock: Monotonic seconds.
    """

    def __init__(
        self,
        total: int,
        log: Any,
        *,
        clock: Callable[[], float] = time.monotonic,
        interval: float = INTERVAL,
    ) -> None:
        self.total = total
        self.accepted = 0
        self.errors: Counter[str] = Counter()
        #: Messages not sent by decision (``DUPLICATE``): neither accepted nor failed.
        self.left_out: Counter[str] = Counter()
        self._log = log
        self._clock = clock
        self._interval = interval
        self._started = clock()
        self._last_line = self._started
        self._done_at_last_line = 0

    @property
    def done(self) -> int:
        return self.accepted + sum(self.errors.values()) + sum(self.left_out.values())

    def add(self, result: MessageResult) -> None:
        if result.accepted:
            self.accepted += 1
        elif result.error in NOT_FAILURES:
            self.left_out[str(result.error)] += 1
        else:
            self.errors[str(result.error)] += 1

    def tick(self) -> None:
        """Log a progress line if the last one is old enough."""
        now = self._clock()
        if now - self._last_line >= self._interval:
            self._line(now, final=False)

    def finish(self) -> None:
        self._line(self._clock(), final=True)

    def _line(self, now: float, *, final: bool) -> None:
        done = self.done
        recent = (done - self._done_at_last_line) / max(now - self._last_line, 1e-9)
        failed = sum(self.errors.values())
        failures = f" ({describe_counts(self.errors)})" if failed else ""
        if self.left_out:
            failures += f", {sum(self.left_out.values()):,} not sent ({describe_counts(self.left_out)})"
        elapsed = now - self._started
        if final:
            self._log.info(
                "Sent %s message(s) in %.1f s: %s accepted, %s failed%s",
                f"{done:,}",
                elapsed,
                f"{self.accepted:,}",
                f"{failed:,}",
                failures,
            )
        else:
            left = (self.total - done) / recent if recent > 0 else None
            self._log.info(
                "Sending: %s/%s done (%s accepted, %s failed%s), %.0f msg/s, %s",
                f"{done:,}",
                f"{self.total:,}",
                f"{self.accepted:,}",
                f"{failed:,}",
                failures,
                recent,
                f"about {left:.0f} s left" if left is not None else "waiting for the API",
            )
        self._last_line, self._done_at_last_line = now, done
