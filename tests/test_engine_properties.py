"""
The send engine against a fake API whose answers are drawn from everything SPEC section 1 allows
and much it does not, interleaved with task retries on one ledger (``hypothesis``).

The fake API keeps the truth: which messages it really took. Whatever it answers, these hold:

- no message is taken twice, across every try of the task (the user did not ask for it);
- every message is settled exactly once in the report, and ``accepted + failed + DUPLICATE == messages``;
- a message is ``DUPLICATE`` exactly when an earlier one has its number and text (unless duplicates
  are allowed), and a ``DUPLICATE`` is never taken;
- a message reported accepted was taken; a message that was taken is never reported with an error
  a retry would resend (``RATE_LIMIT``, ``NOT_ACCEPTED``, ``NOT_SENT``, ``CONNECTION_ERROR``);
- nothing is sent after a validation error;
- no exception but a :class:`CommPeakError` escapes.

``make test`` runs a fixed, bounded set of examples (``derandomize``); ``make fuzz`` runs ten times
as many, freshly drawn (``HYPOTHESIS_PROFILE=fuzz``).
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_commpeak._engine.ledger import SendLedger
from airflow_provider_commpeak._engine.report import RESENDABLE
from airflow_provider_commpeak.exceptions import CommPeakError, CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from helpers import SEND_URL
from helpers.fakes import FakeStateStore
from helpers.ratesim import FakeClock

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "fuzz",
    max_examples=600,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(__import__("os").environ.get("HYPOTHESIS_PROFILE", "default"))

# -- what the API may do with one request ------------------------------------------------------------

#: What the API does with one message of a 200 answer: (taken by the API?, the entry it answers).
FATES = {
    "accept": True,
    "accept_falsy_error": True,
    "accept_with_warning": True,  # a uuid and another error: the API knows it
    "accept_bad_uuid": True,  # a uuid of a shape the client cannot keep
    "rate_limit": False,
    "rate_limit_with_uuid": False,  # SPEC: refused even if it carries a uuid
    "rate_limit_lowercase": False,
    "omit": False,  # left out of the answer
    "error": False,  # a final per-message error
    "silent": None,  # neither uuid nor error: the API said nothing; it may or may not have taken it
}
#: How the answer echoes an ``internal_id``.
ECHOES = ("exact", "as_int", "trimmed", "upper", "missing")


@dataclass
class OkAnswer:
    fates: list[str]
    echo: str
    reorder: bool
    extra: list[str]  # "claim": an unknown id with a uuid; "refusal": an unknown id, an error, no uuid
    duplicate_first: bool
    silent_taken: bool


@dataclass
class FailedAnswer:
    kind: str  # "429", "503", "500", "502", "504", "garbage", "no_list", "deep", "reset", "403", "status_false"
    taken: bool  # whether the API took the batch before failing (only where the client cannot know)
    retry_after: str | None = None


ANSWERS = st.one_of(
    st.builds(
        OkAnswer,
        fates=st.lists(st.sampled_from(sorted(FATES)), min_size=1, max_size=6),
        echo=st.sampled_from(ECHOES),
        reorder=st.booleans(),
        extra=st.lists(st.sampled_from(["claim", "refusal"]), max_size=2),
        duplicate_first=st.booleans(),
        silent_taken=st.booleans(),
    ),
    st.builds(
        FailedAnswer,
        kind=st.sampled_from(
            ["429", "503", "500", "502", "504", "garbage", "no_list", "deep", "reset", "status_false"]
        ),
        taken=st.booleans(),
        retry_after=st.sampled_from([None, "0", "1", "abc", "-5", "1e309", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    ),
    st.just(FailedAnswer(kind="403", taken=False)),
)


@dataclass
class FakeApi:
    """The truth (what was taken) and a script of answers, then answers that accept everything."""

    script: list[Any]
    taken: Counter[str] = field(default_factory=Counter)
    uuids: dict[str, set[str]] = field(default_factory=dict)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: Any, context: Any) -> Any:
        messages = request.json()["messages"]
        with self.lock:
            self.requests += 1
            behaviour = self.script.pop(0) if self.script else OkAnswer(["accept"], "exact", False, [], False, False)
            if isinstance(behaviour, FailedAnswer):
                return self._fail(behaviour, messages, context)
            return self._answer(behaviour, messages)

    def _take(self, internal_id: str) -> str:
        self.taken[internal_id] += 1
        uuid = f"uuid-{internal_id.strip()}-{self.taken[internal_id]}-{self.requests}"
        self.uuids.setdefault(internal_id, set()).add(uuid)
        return uuid

    def _fail(self, behaviour: FailedAnswer, messages: list[dict[str, Any]], context: Any) -> Any:
        kind = behaviour.kind
        could_have_been_taken = kind in ("500", "502", "504", "garbage", "no_list", "deep", "reset", "status_false")
        if could_have_been_taken and behaviour.taken:
            for message in messages:
                self._take(message["internal_id"])
        if kind == "reset":
            raise requests.exceptions.ConnectionError("connection reset by peer")
        if kind in ("429", "503", "500", "502", "504", "403"):
            context.status_code = int(kind)
            if behaviour.retry_after is not None:
                context.headers["Retry-After"] = behaviour.retry_after
            return "" if kind != "403" else json.dumps({"detail": "Not authenticated"})
        return {
            "garbage": "<html>ok</html>",
            "no_list": json.dumps({"status": True, "task_id": "t"}),
            "deep": "[" * 100_000 + "]" * 100_000,
            "status_false": json.dumps({"status": False, "detail": "temporarily unavailable"}),
        }[kind]

    def _answer(self, behaviour: OkAnswer, messages: list[dict[str, Any]]) -> str:
        entries = []
        for i, message in enumerate(messages):
            fate = behaviour.fates[i % len(behaviour.fates)]
            internal_id = message["internal_id"]
            taken = FATES[fate] if FATES[fate] is not None else behaviour.silent_taken
            uuid = self._take(internal_id) if taken else None
            entry: dict[str, Any] = {
                "accept": {"message_uuid": uuid, "error": None},
                "accept_falsy_error": {"message_uuid": uuid, "error": ""},
                "accept_with_warning": {"message_uuid": uuid, "error": "QUEUED_WITH_WARNING"},
                "accept_bad_uuid": {"message_uuid": f"<{uuid}>", "error": None},
                "rate_limit": {"message_uuid": None, "error": "RATE_LIMIT"},
                "rate_limit_with_uuid": {"message_uuid": f"refused-{i}", "error": "RATE_LIMIT"},
                "rate_limit_lowercase": {"message_uuid": None, "error": "rate_limit"},
                "omit": None,
                "error": {"message_uuid": None, "error": "INVALID_RECIPIENT"},
                "silent": {"message_uuid": None, "error": None},
            }[fate]
            if entry is None:
                continue
            echoed = self._echo(internal_id, behaviour.echo)
            if echoed is not None:
                entry["internal_id"] = echoed
            entries.append(entry)
            if fate == "rate_limit" and i + 1 < len(messages):
                break  # CommPeak's own example: the rest of the batch is left out
        if behaviour.duplicate_first and entries:
            entries.append(dict(entries[0]))
        for n, kind in enumerate(behaviour.extra):
            entries.append(
                {"internal_id": f"stranger-{n}", "message_uuid": f"u-stranger-{n}", "error": None}
                if kind == "claim"
                else {"internal_id": f"stranger-{n}", "message_uuid": None, "error": "RATE_LIMIT"}
            )
        if behaviour.reorder:
            entries.reverse()
        return json.dumps({"status": True, "task_id": f"task-{self.requests}", "messages": entries})

    @staticmethod
    def _echo(internal_id: str, how: str) -> Any:
        if how == "as_int" and internal_id.strip().isdigit():
            return int(internal_id)
        return {
            "exact": internal_id,
            "as_int": internal_id,
            "trimmed": internal_id.strip(),
            "upper": internal_id.upper(),
        }.get(how)


# -- the messages ------------------------------------------------------------------------------------

IDS = st.one_of(
    st.from_regex(r"\A0\d{1,3}\Z"),  # "007": echoed as 7 by a sloppy API
    st.from_regex(r"\A[a-z]\d{1,3} \Z"),  # a trailing space: trimmed by a sloppy API
    st.from_regex(r"\A[a-z]{1,3}\d{0,2}\Z"),  # lower case: re-cased by a sloppy API
)
PHONES = ["972524265292", "+972 54-533-0008", "447400123456", "12025550123"]


@st.composite
def campaigns(draw: Any) -> list[dict[str, Any]]:
    ids = draw(st.lists(IDS, min_size=1, max_size=24, unique_by=lambda i: i))
    return [
        {
            "internal_id": internal_id,
            "sender": "S",
            "recipient_phone": draw(st.sampled_from(PHONES)),
            "message_content": draw(st.sampled_from(["hi", "שלום", "a" * 200])),
        }
        for internal_id in ids
    ]


@pytest.fixture
def hook_factory(commpeak_conn, delays):
    def make(rate_limit_timeout: float) -> CommPeakHook:
        clock = FakeClock()
        hook = CommPeakHook(max_retries=2, rate_limit_timeout=rate_limit_timeout, clock=clock, sleep=clock.sleep)
        return hook

    return make


def run_send(hook: CommPeakHook, messages: list[dict[str, Any]], store: FakeStateStore, **options: Any) -> Any:
    try:
        return hook.send_messages(messages, ledger=SendLedger(store), **options)
    except CommPeakValidationError:
        raise  # valid messages: never expected
    except CommPeakError as exc:  # the only kind allowed to escape (a refused key)
        return getattr(exc, "report", None)


@given(
    messages=campaigns(),
    script=st.lists(ANSWERS, max_size=12),
    retries=st.integers(min_value=0, max_value=2),
    batch_size=st.integers(min_value=1, max_value=8),
    max_concurrency=st.sampled_from([1, 1, 2]),
    allow_duplicates=st.booleans(),
)
def test_whatever_the_api_answers_nothing_is_taken_twice_and_everything_is_settled_once(
    hook_factory, requests_mock, messages, script, retries, batch_size, max_concurrency, allow_duplicates
):
    api = FakeApi(list(script))
    requests_mock.post(SEND_URL, text=api)
    store = FakeStateStore()
    ids = [m["internal_id"] for m in messages]
    seen: set[tuple[str, str]] = set()
    repeats = set()
    for m in messages:
        key = (re.sub(r"\D", "", m["recipient_phone"]), m["message_content"])
        if key in seen and not allow_duplicates:
            repeats.add(m["internal_id"])
        seen.add(key)
    for _try in range(1 + retries):
        report = run_send(
            hook_factory(rate_limit_timeout=30),
            messages,
            store,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            allow_duplicates=allow_duplicates,
        )
        if report is None:
            continue
        assert list(report.results) == ids, "every message settled exactly once, in input order"
        assert report.accepted + report.failed + report.errors["DUPLICATE"] == len(messages)
        assert {i for i, r in report.results.items() if r["error"] == "DUPLICATE"} == repeats
        assert not any(api.taken[i] for i in repeats), "a DUPLICATE was sent"
        for internal_id, result in report.results.items():
            if result["error"] is None:
                assert result["message_uuid"] in api.uuids.get(internal_id, ()), "reported accepted, never taken"
            if api.taken[internal_id]:
                assert result["error"] not in RESENDABLE, (
                    f"{internal_id!r} was taken, yet reported {result['error']}: a retry would resend it"
                )
        duplicated = {i: n for i, n in api.taken.items() if n > 1}
        assert duplicated == {}, f"taken more than once: {duplicated}"


BAD = st.sampled_from(
    [
        {"recipient_phone": "12"},
        {"recipient_phone": "052-426-5292"},
        {"message_content": ""},
        {"message_content": "cut \ud83d"},
        {"sender": ""},
        {"internal_id": "x" * 200},
        {"unexpected": 1},
    ]
)


@given(messages=campaigns(), bad=BAD, where=st.integers(min_value=0, max_value=100))
def test_nothing_is_sent_after_a_validation_error(hook_factory, requests_mock, messages, bad, where):
    api = FakeApi([])
    requests_mock.post(SEND_URL, text=api)
    position = where % len(messages)
    messages[position] = {**messages[position], **bad}
    with pytest.raises(CommPeakValidationError) as info:
        hook_factory(rate_limit_timeout=30).send_messages(messages)
    assert any(problem.startswith(f"message {position}:") for problem in info.value.problems)
    assert api.requests == 0


@given(
    messages=campaigns(),
    script=st.lists(ANSWERS, max_size=12),
    max_rate=st.sampled_from([0.5, 3.0, 20.0, 250.0]),
    batch_size=st.integers(min_value=1, max_value=8),
)
def test_whatever_the_api_answers_max_rate_is_never_exceeded(
    commpeak_conn, delays, requests_mock, messages, script, max_rate, batch_size
):
    """
    Messages go out at most ``max_rate`` a second (over any second, plus one slot's worth), whatever
    comes back. One sender: the fake clock then moves only by the send's own waits.
    """
    clock = FakeClock()
    hook = CommPeakHook(max_retries=2, rate_limit_timeout=30, max_rate=max_rate, clock=clock, sleep=clock.sleep)
    api = FakeApi(list(script))
    sent: list[tuple[float, int]] = []

    def answer(request: Any, context: Any) -> Any:
        sent.append((clock(), len(request.json()["messages"])))
        return api(request, context)

    requests_mock.post(SEND_URL, text=answer)
    run_send(hook, messages, FakeStateStore(), batch_size=batch_size, max_concurrency=1)
    slot = max(1, int(max_rate * 0.25))
    for i, (start, _) in enumerate(sent):
        assert sum(n for at, n in sent[i:] if at < start + 1.0) <= max_rate + slot, sent
