"""Status polls are paced once the API pushes back on them (``_engine/poll_pacer.py``), on a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_commpeak._engine.classify import Answer, Outcome
from airflow_provider_commpeak._engine.poll_pacer import PACED_REFUSALS, PollPacer, is_pushback
from airflow_provider_commpeak._engine.rate import JITTER
from airflow_provider_commpeak._engine.retry import RetryPolicy
from airflow_provider_commpeak.exceptions import CommPeakApiError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from helpers import STATUS_URL
from helpers.ratesim import FakeClock

OK = Answer(Outcome.OK, "200", "HTTP 200", status_code=200, body={})
BARE_429 = Answer(Outcome.NOT_PROCESSED, "429", "HTTP 429", status_code=429, retryable=True)
ASKED_429 = Answer(Outcome.NOT_PROCESSED, "429", "HTTP 429", status_code=429, retryable=True, retry_after=3.0)
NO_CONNECTION = Answer(Outcome.NOT_PROCESSED, "CONNECTION_ERROR", "refused", retryable=True)
SERVER_ERROR = Answer(Outcome.UNKNOWN, "500", "HTTP 500", status_code=500)


class NoBurstLimit:
    """An edge that lets ``rate`` requests a second through, evenly spaced, no burst (nginx ``limit_req``)."""

    def __init__(self, rate: float, clock: FakeClock) -> None:
        self.rate, self.clock = rate, clock
        self.tokens, self.updated = 1.0, clock()
        self.refused = self.served = 0

    def take(self) -> bool:
        now = self.clock()
        self.tokens, self.updated = min(1.0, self.tokens + (now - self.updated) * self.rate), now
        if self.tokens >= 1:
            self.tokens -= 1
            self.served += 1
            return True
        self.refused += 1
        return False


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pacer(clock) -> PollPacer:
    return PollPacer(RetryPolicy(max_retries=4), clock)


def test_only_a_429_or_503_is_a_pushback():
    assert is_pushback(BARE_429)
    assert is_pushback(ASKED_429)
    assert not is_pushback(OK)
    assert not is_pushback(NO_CONNECTION)  # nothing reached the API: the transport retries it
    assert not is_pushback(SERVER_ERROR)


def test_nothing_is_paced_until_the_api_pushes_back(pacer, clock):
    for _ in range(50):
        assert pacer.wait() == 0
        assert pacer.answered(OK, sent_at=clock(), attempt=1) is False
        clock.sleep(0.01)
    assert pacer.controller.rate is None


def test_a_pushed_back_request_is_tried_again_at_its_paced_slot_then_with_backoff(pacer, clock):
    for _ in range(20):  # 100 requests a second answered, then a refusal
        pacer.wait()
        pacer.answered(OK, sent_at=clock(), attempt=1)
        clock.sleep(0.01)
    pacer.wait()
    assert pacer.answered(BARE_429, sent_at=clock(), attempt=1) is True
    rate = pacer.controller.rate
    assert rate is not None  # paced from now on
    waits = [pacer.wait() for _ in range(3)]
    assert waits[0] == 0  # the retry takes the first paced slot at once...
    assert (1 - JITTER) / rate <= waits[1] <= (1 + JITTER) / rate  # ...and the next one is a paced gap away
    assert waits[2] == waits[1]  # asked again before its time, it is told the same time (nothing is booked)
    for attempt in range(2, PACED_REFUSALS + 1):
        assert pacer.answered(BARE_429, sent_at=clock(), attempt=attempt) is True
        assert pacer.controller._paused_until <= clock()  # the paced tries wait for their slot only
    assert pacer.answered(BARE_429, sent_at=clock(), attempt=PACED_REFUSALS + 1) is True
    backoff = pacer.controller._paused_until - clock()  # refusals go on: the policy's backoff as well
    ceiling = 2**PACED_REFUSALS  # backoff_base 1 s, doubling per retry, equal jitter
    assert ceiling / 2 <= backoff <= ceiling


def test_retry_after_pauses_every_status_request(pacer, clock):
    assert pacer.answered(ASKED_429, sent_at=clock(), attempt=1) is True
    assert pacer.wait() == pytest.approx(3.0)


def test_the_retries_end_with_the_policys_max_retries(pacer, clock):
    assert [pacer.answered(BARE_429, sent_at=clock(), attempt=n) for n in range(1, 7)] == [True] * 4 + [False] * 2


def run_poll(hook: CommPeakHook, requests_mock, clock: FakeClock, limit: NoBurstLimit, uuids: list[str]):
    def answer(request, context):
        clock.sleep(0.005)  # the round trip
        if not limit.take():
            context.status_code = 429
            return {"detail": "Too Many Requests"}
        return {"messages": [{"message_uuid": u, "status": "delivered"} for u in request.json()["message_uuids"]]}

    requests_mock.post(STATUS_URL, json=answer)
    start = clock()
    statuses = hook.get_statuses(uuids, batch_size=1)
    return statuses, clock() - start


def test_a_long_poll_slows_to_the_rate_the_api_serves(commpeak_conn, requests_mock, clock):
    """
    400 status requests against 20 a second, no burst. Unpaced, each request after the first found
    the limit and waited a backoff (1.4.0: 7 % of the limit in the sandbox); paced, the refusals
    stay a small share and the poll takes a small multiple of the 20 s it needs at the limit.
    (1.8.0, 12 runs of the jitter: 76-119 refused, 37-38 s.)
    """
    hook = CommPeakHook(clock=clock, sleep=clock.sleep)
    limit = NoBurstLimit(20, clock)
    uuids = [f"u{i}" for i in range(400)]
    statuses, elapsed = run_poll(hook, requests_mock, clock, limit, uuids)
    assert statuses == dict.fromkeys(uuids, "delivered")
    assert limit.served == 400
    assert limit.refused <= 400 * 0.35
    assert elapsed <= 400 / 20 * 2.5  # unpaced: a 0.5-1 s backoff for almost every request, 200-400 s


def test_a_status_request_refused_past_the_retries_is_an_api_error(commpeak_conn, requests_mock, clock):
    hook = CommPeakHook(max_retries=2, clock=clock, sleep=clock.sleep)
    requests_mock.post(STATUS_URL, status_code=429, json={"detail": "Too Many Requests"})
    with pytest.raises(CommPeakApiError, match="429"):
        hook.get_statuses(["a"])
    assert requests_mock.call_count == 3


def test_the_async_poll_is_paced_by_the_same_rules(commpeak_sandbox):
    """The triggerer's path (``aget_statuses``) against the sandbox's status limit: every status read."""
    commpeak_sandbox.state.update_settings({"status_rate_limit": 50})
    hook = CommPeakHook()
    uuids = [f"u{i}" for i in range(120)]

    async def poll() -> dict[str, str]:
        try:
            return await hook.aget_statuses(uuids, batch_size=1)
        finally:
            await hook.aclose()

    statuses = asyncio.run(poll())
    assert statuses == dict.fromkeys(uuids, "unknown")  # the sandbox never sent these: all read, none lost
    assert hook.status_pacer.controller.rate is not None  # it was pushed back, and paced
    assert commpeak_sandbox.stats()["status_refused"] <= 120 * 0.5


def test_the_first_pace_is_half_the_rate_that_found_the_limit(pacer, clock):
    """A limit with no burst refuses the second request at once: start near it, not at one a second."""
    pacer.answered(OK, sent_at=clock(), attempt=1)
    clock.sleep(0.01)
    pacer.answered(BARE_429, sent_at=clock(), attempt=1)
    assert pacer.controller.rate == pytest.approx(0.5 / 0.01)


def test_raise_pace_only_raises_and_only_once_paced(clock):
    from airflow_provider_commpeak._engine.rate import RateController

    controller = RateController(clock=clock)
    controller.raise_pace(50)
    assert controller.rate is None  # unpaced stays unpaced
    controller.record(sent_at=clock(), sent=1, accepted=0, refused=1)
    first = controller.rate
    controller.raise_pace(first + 10)
    controller.raise_pace(1)
    assert controller.rate == first + 10


ANSWER_KINDS = st.sampled_from(["ok", "ok", "ok", "429", "429-after", "503", "500", "timeout"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    script=st.lists(ANSWER_KINDS, max_size=40),
    n=st.integers(min_value=0, max_value=12),
    batch_size=st.integers(min_value=1, max_value=5),
    retries=st.integers(min_value=0, max_value=3),
)
def test_whatever_the_status_endpoint_answers_each_uuid_is_read_once_or_the_poll_fails(
    commpeak_conn, delays, requests_mock, script, n, batch_size, retries
):
    """
    A scripted mix of answers (then OK): the poll returns every uuid exactly once, asks in whole
    chunks and in order, tries each chunk a bounded number of times, and never
    waits without bound; or it raises ``CommPeakApiError`` once the retries of one chunk ran out.
    """
    import requests as requests_lib

    clock = FakeClock()  # paced waits move it; the retry policy's backoffs are recorded, not waited (delays)
    hook = CommPeakHook(max_retries=retries, clock=clock, sleep=clock.sleep, backoff_max=5)
    answers = list(script)
    asked: list[tuple[str, ...]] = []

    def answer(request, context):
        chunk = request.json()["message_uuids"]
        asked.append(tuple(chunk))
        clock.sleep(0.002)
        kind = answers.pop(0) if answers else "ok"
        if kind == "timeout":
            raise requests_lib.exceptions.ReadTimeout("scripted")
        if kind != "ok":
            context.status_code = int(kind[:3])
            if kind == "429-after":
                context.headers["Retry-After"] = "2"
            return {"detail": "scripted"}
        return {"messages": [{"message_uuid": u, "status": "delivered"} for u in chunk]}

    requests_mock.post(STATUS_URL, json=answer)
    uuids = [f"u{i}" for i in range(n)]
    start = clock()
    try:
        statuses = hook.get_statuses(uuids, batch_size=batch_size)
    except CommPeakApiError:
        assert len(asked) >= retries + 1  # it gave up only after trying
        return
    assert statuses == dict.fromkeys(uuids, "delivered")
    chunks = [tuple(uuids[i : i + batch_size]) for i in range(0, n, batch_size)]
    assert list(dict.fromkeys(asked)) == chunks  # only whole chunks, in order, each answered
    # each paced try of a chunk (at most max_retries + 1) may itself retry an unknown outcome as often
    assert all(asked.count(chunk) <= (retries + 1) ** 2 for chunk in chunks)
    # paced waits and backoffs stay bounded: 5 s backoff cap, 1 msg/s floor, at most 40 scripted refusals
    assert clock() - start <= 40 * (5 + 1) + n
