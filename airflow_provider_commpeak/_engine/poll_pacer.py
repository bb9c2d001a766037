"""
Status polls on the key's budget. A poll round of a million uuids is two thousand requests on the
same key as the sends: when the API answers one with 429/503, the rest of the round slows down
instead of each request finding the limit again and paying its own backoff.

One :class:`~airflow_provider_commpeak._engine.rate.RateController` per hook counts status
*requests* (a request is one unit: the API's limit on reads is per request, as far as anyone can
tell). Nothing is paced until the first pushback; from then on the controller's rules for
requests (:data:`~airflow_provider_commpeak._engine.rate.POLLS`: a little above what the API served,
an overshoot dropped at once, ``Retry-After`` pausing every request) find the pace the API serves.

The request the API pushed back is tried again, up to the retry policy's ``max_retries``: after its
first :data:`PACED_REFUSALS` refusals at its next paced slot (or after ``Retry-After``), after later ones
also after the policy's backoff, so an API that keeps refusing (an outage, not a rate) is still given
its time.
"""

from __future__ import annotations

from collections.abc import Callable

from airflow_provider_commpeak._engine.classify import Answer, Outcome
from airflow_provider_commpeak._engine.rate import POLLS, RateController
from airflow_provider_commpeak._engine.retry import RetryPolicy

#: Refusals in a row of one status request after which its retry waits only for its paced slot;
#: after later ones (refusals that go on: an outage rather than a rate) it waits the backoff as well.
PACED_REFUSALS = 2
#: At the first pushback, the pace starts at least at this share of the rate the requests went at.
FIRST_SHARE = 0.5


def is_pushback(answer: Answer) -> bool:
    """A 429/503: the API did not look at the request and asks for it later."""
    return answer.outcome is Outcome.NOT_PROCESSED and answer.retryable and answer.status_code is not None


class PollPacer:
    """
    Paces one hook's status requests, one poll at a time (the sensor and the trigger poll
    sequentially; the controller itself is thread-safe).

    :param policy: The hook's retry policy (how many retries, how long the later ones wait).
    :param clock: Monotonic seconds (a fake clock in tests).
    """

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self.controller = RateController(clock=clock, rules=POLLS)
        self._clock = clock
        self._last_sent_at: float | None = None

    def wait(self) -> float:
        """
        Seconds until the next status request may go: 0 = go now (the slot is taken); more = wait that
        long, then ask again.
        """
        _, wait = self.controller.reserve(1)
        return wait

    def now(self) -> float:
        """The controller's clock: when a request goes, for :meth:`answered`."""
        return self._clock()

    def answered(self, answer: Answer, *, sent_at: float, attempt: int) -> bool:
        """
        Note the answer to try number ``attempt`` (1 for the first) of one status request.

        :returns: Whether to try the same request again (it was pushed back and retries are left);
            the wait before it is already set on the controller, so :meth:`wait` includes it.
        """
        pushed = is_pushback(answer)
        unpaced = self.controller.rate is None
        self.controller.record(sent_at=sent_at, sent=1, accepted=0 if pushed else 1, refused=int(pushed))
        if pushed and unpaced and self._last_sent_at is not None and sent_at > self._last_sent_at:
            # The first refusal: this request came too soon after the one before, so the API's pace is
            # below that gap's. Start at half of it (the controller's start, what the API accepted
            # over the last second, is one request when the API allows no burst); the rules go on from there.
            self.controller.raise_pace(FIRST_SHARE / (sent_at - self._last_sent_at))
        self._last_sent_at = sent_at
        if not pushed or attempt > self.policy.max_retries:
            return False
        if attempt > PACED_REFUSALS or answer.retry_after is not None:  # refusals go on (or it said how long)
            self.controller.pause(self.policy.delay(attempt, answer.retry_after))
        return True
