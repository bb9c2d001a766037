"""
The send pipeline: staged messages -> skip what an earlier try settled -> a shared queue -> paced
batches, ``max_concurrency`` in flight -> one result sink.

Each sender thread takes a batch from the queue when the rate controller lets it, writes it ahead in
the ledger, posts it, and settles the answer itself: ledger, sink, queue, controller, in that order,
before anything that can be interrupted runs. Messages refused with ``RATE_LIMIT`` or left out of
an answer go back to the queue (in input order) and out again as soon as the pace allows; a message
is given up only when the API accepted nothing at all for ``rate_limit_timeout`` seconds.

If the calling thread is interrupted (a task timeout, a signal), no new batch starts; batches in
flight finish and record their answers (each bounded by its request deadline) before the
exception goes on.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_commpeak._engine.classify import (
    Answer,
    Failure,
    Outcome,
    classify_failure,
    describe_shape,
    safe_code,
    safe_token,
)
from airflow_provider_commpeak._engine.connection import SEND_PATH
from airflow_provider_commpeak._engine.ledger import SendLedger, fingerprint
from airflow_provider_commpeak._engine.progress import SendProgress
from airflow_provider_commpeak._engine.queue import Pending, PendingQueue
from airflow_provider_commpeak._engine.rate import RateController
from airflow_provider_commpeak._engine.report import (
    CONNECTION_ERROR,
    EXPIRED,
    NOT_ACCEPTED,
    NOT_SENT,
    RATE_LIMIT,
    UNCONFIRMED,
    MessageResult,
    ResultSink,
    SendOutcome,
    describe_counts,
    is_rate_limit,
)
from airflow_provider_commpeak._engine.retry import RetryPolicy
from airflow_provider_commpeak._engine.settled import SettledIndex
from airflow_provider_commpeak._engine.transport import SyncTransport, encode_body
from airflow_provider_commpeak._input.message import WAITING, Message

#: Seconds of the first wait after a 429/503 without ``Retry-After`` (doubling while they go on, up to
#: ``backoff_max``): the rate controller already slows every sender; the wait only lets a burst pass.
PUSHBACK_BASE = 0.25
#: For this many seconds from the first bare 429/503 (no ``Retry-After``, no acceptance since), they
#: only pause senders briefly; past it they also slow the pace and the waits grow.
TRANSIENT_SECONDS = 2.0
#: Answers in a row without a bare 429/503 after which one more request may be in flight again
#: (up to ``max_concurrency``), once such a refusal lowered the cap.
CONCURRENCY_PROBE_AFTER = 10
#: Requests in a row whose outcome is unknown (timeouts, 5xx) after which the send stops: an API
#: that swallows every request would otherwise cost a full timeout per batch.
MAX_CONSECUTIVE_UNKNOWN = 5


@dataclass
class PipelineResult:
    """
    How a send ended (per-message results are in the sink).

    :param requests: Send requests made.
    :param refused: Messages the API pushed back (``RATE_LIMIT``, left out, a 429/503), each time.
    :param skipped: Messages an earlier try had settled (not sent again).
    :param changed: Of those, how many had other content then under the same ``internal_id``.
    :param stopped_by: The answer that stopped sending early (refused key, redirect, unreachable
        API...), if one did.
    :param gave_up: The API accepted nothing for ``rate_limit_timeout`` seconds while refusing.
    :param expired: The messages' validity ended, or their send window closed, before all were
        accepted (the rest are ``EXPIRED``, or ``WAITING``).
    :param error: An exception raised inside the pipeline (e.g. by ``on_batch_done``), re-raised by
        the caller after everything was recorded.
    """

    requests: int = 0
    refused: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    changed: int = 0
    settled: int = 0
    stopped_by: Answer | None = None
    gave_up: bool = False
    expired: bool = False
    error: BaseException | None = field(default=None, repr=False)


class SendPipeline:
    """
    Sends staged messages through a transport, paced by a shared rate controller.

    :param transport: The hook's HTTP client.
    :param controller: The hook's rate controller (shared by every send of the hook).
    :param policy: The retry policy (backoff after a 429/503 without ``Retry-After``).
    :param batch_size: At most this many messages per request.
    :param max_concurrency: Requests in flight at once.
    :param rate_limit_timeout: Give up when the API accepted nothing for this many seconds.
    :param log: Where progress and problems are logged.
    :param clock: Monotonic seconds (shared with the controller).
    :param sleep: Waits that many seconds; returns ``True`` if the send is being stopped (default:
        a wait on the pipeline's stop event).
    """

    def __init__(
        self,
        transport: SyncTransport,
        controller: RateController,
        policy: RetryPolicy,
        *,
        batch_size: int,
        max_concurrency: int,
        rate_limit_timeout: float,
        log: Any,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self._transport = transport
        self._controller = controller
        self._policy = policy
        self._batch_size = batch_size
        self._max_concurrency = max_concurrency
        self._rate_limit_timeout = rate_limit_timeout
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait

    # -- the run -----------------------------------------------------------------------------------

    def run(
        self,
        messages: Iterable[Message],
        *,
        total: int,
        sink: ResultSink,
        ledger: SendLedger,
        on_batch_done: Callable[[SendOutcome], None] | None = None,
        left_out: Mapping[int, str] | None = None,
        expires_at: float | None = None,
        window_closes_at: float | None = None,
    ) -> PipelineResult:
        """
        Send every message not settled by an earlier try; put each result in ``sink``.

        :param messages: The staged messages, in input order.
        :param total: How many there are.
        :param sink: Where each message's result goes.
        :param ledger: Earlier tries' results, and where this one's are recorded.
        :param on_batch_done: Called with each batch's results once they are recorded.
        :param left_out: Positions of messages not to send, each with its error (``DUPLICATE``,
            ``SUPPRESSED``): each is settled so without a request.
        :param expires_at: On the pipeline's clock, when the messages stop being worth sending: no
            request starts after it; every message not accepted by then is ``EXPIRED``.
        :param window_closes_at: On the pipeline's clock, when the send window closes for a message
            being sent: no request starts after it; the messages not accepted by then are ``WAITING``.
        """
        self._sink, self._ledger, self._on_batch_done = sink, ledger, on_batch_done
        stops = [(at, code) for at, code in ((expires_at, EXPIRED), (window_closes_at, WAITING)) if at is not None]
        self._expires_at: float | None = min(stops)[0] if stops else None
        self._stop_code: str = min(stops)[1] if stops else EXPIRED
        self._result = PipelineResult()
        self._progress = SendProgress(total, self._log, clock=self._clock)
        self._in_flight = 0
        #: Requests allowed in flight: lowered by a bare 429/503 to a request that had company (an
        #: API or proxy serving fewer requests at a time), raised again one by one.
        self._concurrency = self._max_concurrency
        self._answers_since_capped = 0
        self._last_served = float("-inf")
        self._consecutive_unknown = 0
        self._consecutive_pushback = 0
        self._last_pause = float("-inf")
        self._bare_pushback_since: float | None = None
        self._last_progress = self._last_pushback = self._clock()
        settled = ledger.settled()
        self._queue = PendingQueue(self._unsettled(messages, settled, left_out or {}))
        # Each sender says it is done through its own event, not Thread.join(): on Python < 3.13 a
        # join interrupted by a signal marks a thread still running as finished
        # (https://github.com/python/cpython/issues/90882), and the exception would go on while a
        # batch is in flight with its answer unrecorded.
        done = [threading.Event() for _ in range(self._max_concurrency)]
        threads = [
            threading.Thread(target=self._guarded_sender, args=(finished,), name=f"commpeak-send-{i}")
            for i, finished in enumerate(done)
        ]
        try:
            for thread in threads:
                thread.start()
            for finished in done:
                finished.wait()
        except BaseException:
            self._request_stop()  # no new batch; those in flight finish and record their answers
            started = [finished for thread, finished in zip(threads, done, strict=True) if thread.ident is not None]
            _wait_all(started, self._transport.config.timeout + 30)  # one not started yet sees the stop
            raise
        self._finish()
        return self._result

    def _unsettled(
        self, messages: Iterable[Message], settled: SettledIndex, left_out: Mapping[int, str]
    ) -> Iterator[tuple[int, Message]]:
        """
        The messages to send; those settled by an earlier try, then those left out this time, go
        straight to the sink (an earlier try's result wins: a message it got accepted is reported
        accepted even if its send window is closed now).
        """
        for seq, message in enumerate(messages):
            earlier = settled.get(message.internal_id)
            if earlier is None:
                if seq in left_out:
                    self._settle_one(seq, MessageResult(message.internal_id, None, left_out[seq]))
                else:
                    yield seq, message
                continue
            if earlier.fingerprint is not None and earlier.fingerprint != _fingerprint(message):
                self._result.changed += 1
            self._result.skipped[earlier.result.error or "accepted"] += 1
            self._settle_one(seq, earlier.result)

    def _finish(self) -> None:
        """Account for whatever was never sent, and log the outcome."""
        with self._lock:
            stopped = 0
            for pending in self._queue.drain():  # pushed back keep their last error; untried are NOT_SENT
                error = self._stop_code if self._result.expired else pending.error or NOT_SENT
                stopped += self._result.expired
                self._settle_one(pending.seq, MessageResult(pending.message.internal_id, None, error))
            if stopped and self._stop_code == EXPIRED:
                self._log.error(
                    "The messages' validity ended: %d message(s) not accepted by then are not sent (EXPIRED)", stopped
                )
            elif stopped:
                self._log.info("The send window closed: %d message(s) wait for it to open again (WAITING)", stopped)
            if self._result.changed:
                self._log.warning(
                    "%d message(s) settled by an earlier try had other content then (number, sender or text) "
                    "under the same internal_id; they were not sent again. To send the new content, give those "
                    "messages new internal_ids",
                    self._result.changed,
                )
            skipped = self._result.skipped
            if skipped:
                self._log.info(
                    "%d message(s) settled by an earlier try of this task instance were not sent again (%s); "
                    "to send them again on purpose see the README, 'Retries and duplicates'",
                    sum(skipped.values()),
                    describe_counts(skipped),
                )
            self._progress.finish()

    # -- one sender thread -------------------------------------------------------------------------

    def _guarded_sender(self, finished: threading.Event) -> None:
        try:
            self._sender()
        except BaseException as exc:  # e.g. the ledger's store failed: stop everything, re-raise later
            with self._lock:
                if self._result.error is None:
                    self._result.error = exc
            self._request_stop()
        finally:
            finished.set()

    def _request_stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._changed.notify_all()

    def _sender(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._in_flight >= self._concurrency:
                    self._changed.wait(0.5)  # a request in flight finishing frees a place
                    continue
            allowed, wait = self._controller.reserve(self._batch_size)
            if self._expires_at is not None:
                wait = min(wait, max(self._expires_at - self._clock(), 0.0))
            if wait > 0 and (self._sleep(wait) or self._stop.is_set()):
                self._controller.release(allowed)
                return
            with self._lock:
                if self._gave_up() or self._expired():
                    self._controller.release(allowed)
                    return
                if not allowed:
                    continue  # the next slot has come: ask for it
                batch = self._queue.take(allowed)
                if not batch:
                    self._controller.release(allowed)
                    if self._queue.exhausted and self._in_flight == 0:
                        self._changed.notify_all()
                        return
                    self._changed.wait(0.5)  # messages in flight may come back
                    continue
                self._in_flight += 1
                company = self._in_flight - 1
            if len(batch) < allowed:
                self._controller.release(allowed - len(batch))
            try:
                self._send(batch, company)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._changed.notify_all()

    def _expired(self) -> bool:
        """Under the lock: whether the messages' validity has ended (then no request starts)."""
        if self._expires_at is None or self._clock() < self._expires_at:
            return False
        if not self._result.expired:
            self._result.expired = True
            self._stop.set()
            self._changed.notify_all()
        return True

    def _gave_up(self) -> bool:
        """Under the lock: give up when the API took nothing for ``rate_limit_timeout`` while refusing."""
        if self._result.gave_up:
            return True
        now = self._clock()
        if self._last_pushback <= self._last_progress or now - self._last_progress < self._rate_limit_timeout:
            return False
        if not self._queue.waiting:
            return False
        self._result.gave_up = True
        self._log.error(
            "The API accepted no message for %.0f s (rate_limit_timeout) while refusing them: giving up "
            "on the %d message(s) it refused and those not sent yet",
            now - self._last_progress,
            self._queue.waiting,
        )
        self._stop.set()
        self._changed.notify_all()
        return True

    def _send(self, batch: list[Pending], company: int = 0) -> None:
        try:  # everything that can fail before a byte leaves fails before the ledger marks the batch
            body = encode_body({"messages": [p.message.payload() for p in batch]})
        except (ValueError, UnicodeError) as exc:
            body, number = None, None
            self._log.error("A batch of %d could not be encoded (%s): NOT_SENT", len(batch), type(exc).__name__)
        else:
            fingerprints = {p.seq: _fingerprint(p.message) for p in batch} if self._ledger.durable else {}
            number = self._ledger.begin((p.message.internal_id, fingerprints[p.seq]) for p in batch)
        sent_at = self._clock()
        answer = (
            classify_failure(Failure.INVALID_REQUEST, bytes_sent=False, path=SEND_PATH)
            if body is None
            else self._send_body(body)
        )
        settled, pushed_back, task_id = self._judge(batch, answer)
        if number is not None:
            self._ledger.finish(number, [(result, fingerprints[seq]) for seq, result in settled])
        self._record(batch, answer, sent_at, settled, pushed_back, task_id, company)

    def _send_body(self, body: bytes) -> Answer:
        return self._transport.request(
            SEND_PATH,
            body,
            retry_unknown=False,
            stop=self._stop,
        )

    def _record(
        self,
        batch: list[Pending],
        answer: Answer,
        sent_at: float,
        settled: list[tuple[int, MessageResult]],
        pushed_back: list[Pending],
        task_id: str | None,
        company: int = 0,
    ) -> None:
        """
        Account for a batch's answer (recorded in the ledger already): sink, queue, controller, in that
        order. ``company``: how many other requests were in flight when it was sent.
        """
        with self._lock:
            self._result.requests += 1
            self._result.refused += len(pushed_back)
            for seq, result in settled:
                self._settle_one(seq, result)
            if task_id is not None:
                self._sink.add_task_id(task_id)
            self._queue.push_back(pushed_back)
            accepted = sum(1 for _, result in settled if result.accepted)
            now = self._clock()
            if accepted:
                self._last_progress = now
                self._consecutive_pushback = 0
                self._bare_pushback_since = None
            if pushed_back:
                self._last_pushback = now
            # A bare 429/503 (no Retry-After) is an edge's "not now", not the API's measure of our rate.
            # To a request sent beside others the API has been answering, it refuses a place, not the
            # pace: one request fewer in flight, no wait, nothing for the rate controller. Otherwise,
            # for its first TRANSIENT_SECONDS it only pauses everyone briefly; refusals that go on slow
            # the pace and escalate the wait. A refusal to a request sent before the last wait began
            # (in flight when the first came back) tells nothing new: it neither waits nor escalates.
            bare = answer.outcome is Outcome.NOT_PROCESSED and answer.retry_after is None
            if answer.outcome is not Outcome.NOT_PROCESSED:
                self._last_served = now
            place_refused = bare and company > 0 and self._served_alongside(company, now)
            bare = bare and not place_refused
            if bare and self._bare_pushback_since is None:
                self._bare_pushback_since = now
            transient = bare and now - (self._bare_pushback_since or now) < TRANSIENT_SECONDS
            wait = (
                answer.outcome is Outcome.NOT_PROCESSED
                and bool(pushed_back)
                and sent_at >= self._last_pause
                and not place_refused
            )
            if wait:
                self._last_pause = now
                if not transient:
                    self._consecutive_pushback += 1
            if not place_refused and self._concurrency < self._max_concurrency:
                self._answers_since_capped += 1
                if self._answers_since_capped >= CONCURRENCY_PROBE_AFTER:  # try one more at a time
                    self._concurrency += 1
                    self._answers_since_capped = 0
            attempt = max(self._consecutive_pushback, 1)
            self._progress.tick()
        refused = 0 if transient or place_refused else len(pushed_back)
        self._controller.record(sent_at=sent_at, sent=len(batch), accepted=accepted, refused=refused)
        if wait:  # everyone waits: Retry-After, else a short backoff (growing once refusals go on)
            self._controller.pause(self._policy.delay(attempt, answer.retry_after, base=PUSHBACK_BASE))
        self._log.debug(
            "Batch of %d: %d accepted, %d pushed back, %d failed (%s)",
            len(batch),
            accepted,
            len(pushed_back),
            len(settled) - accepted,
            answer.code,
        )
        if self._on_batch_done is not None:
            report = SendOutcome(task_ids=[task_id] if task_id else [])
            for _, result in settled:
                report.record(*result)
            self._on_batch_done(report)

    def _served_alongside(self, company: int, now: float) -> bool:
        """
        Under the lock: a bare 429/503 came back for a request sent beside ``company`` others. If the
        API served a request in the last :data:`TRANSIENT_SECONDS`, it limits requests at a time, not
        the rate: allow one fewer than were in flight (at least one), and count answers until one
        more is tried.
        """
        if now - self._last_served >= TRANSIENT_SECONDS:
            return False  # nothing served lately: the API may be refusing everything
        self._concurrency = max(1, min(self._concurrency, company))
        self._answers_since_capped = 0
        self._log.debug("A bare refusal beside %d request(s) in flight: %d at a time now", company, self._concurrency)
        return True

    def _settle_one(self, seq: int, result: MessageResult) -> None:
        """Under the lock (or before the senders start): one message's final result."""
        self._sink.add(seq, result)
        self._progress.add(result)
        self._result.settled += 1

    # -- what an answer means for each message -----------------------------------------------------

    def _judge(
        self, batch: list[Pending], answer: Answer
    ) -> tuple[list[tuple[int, MessageResult]], list[Pending], str | None]:
        """Split a batch into settled results and messages to send again, from the answer."""

        def all_as(error: str) -> list[tuple[int, MessageResult]]:
            return [(p.seq, MessageResult(p.message.internal_id, None, error)) for p in batch]

        if answer.outcome is Outcome.OK:
            return self._judge_entries(batch, answer.body)
        if answer.outcome is Outcome.NOT_PROCESSED:
            if answer.status_code is not None:  # 429/503: nothing was processed; send again, paced
                return [], [p._replace(error=answer.code) for p in batch], None
            self._stop_with(answer)  # unreachable after every retry, or a request that cannot be built
            return all_as(CONNECTION_ERROR if answer.code == "CONNECTION_ERROR" else NOT_SENT), [], None
        if answer.outcome is Outcome.UNKNOWN:
            self._note_unknown(answer, len(batch))
            return all_as(UNCONFIRMED), [], None
        if answer.outcome is Outcome.AUTH:
            self._stop_with(answer)
            return all_as(NOT_SENT), [], None
        if answer.fatal:
            self._stop_with(answer)
        else:
            self._log.error("Batch of %d refused: %s", len(batch), answer.description)
        return all_as(answer.code), [], None

    def _judge_entries(
        self, batch: list[Pending], body: Any
    ) -> tuple[list[tuple[int, MessageResult]], list[Pending], str | None]:
        entries = body.get("messages") if isinstance(body, Mapping) else None
        if not isinstance(entries, list):
            self._note_unknown(None, len(batch), f"an answer without a messages list ({describe_shape(body)})")
            return [(p.seq, MessageResult(p.message.internal_id, None, UNCONFIRMED)) for p in batch], [], None
        self._consecutive_unknown = 0
        task_id = safe_token(body.get("task_id"))
        by_id, unmatched_claims = match_entries([p.message.internal_id for p in batch], entries)
        settled: list[tuple[int, MessageResult]] = []
        pushed_back: list[Pending] = []
        for pending in batch:
            internal_id = pending.message.internal_id
            entry = by_id.get(internal_id)
            if entry is None:
                if unmatched_claims:  # the API took something we cannot place: never resend blindly
                    settled.append((pending.seq, MessageResult(internal_id, None, UNCONFIRMED, task_id)))
                else:
                    pushed_back.append(pending._replace(error=NOT_ACCEPTED))
                continue
            result = judge_entry(internal_id, entry, task_id)
            if result is None:
                pushed_back.append(pending._replace(error=RATE_LIMIT))
            else:
                settled.append((pending.seq, result))
        if unmatched_claims and len(by_id) < len(batch):
            self._log.error(
                "An answer held %d entr(ies) naming no message of its batch (an internal_id echoed "
                "differently, or none): the %d message(s) of the batch it did not name are UNCONFIRMED "
                "(they may have been accepted) and are not sent again",
                unmatched_claims,
                len(batch) - len(by_id),
            )
        return settled, pushed_back, task_id

    def _note_unknown(self, answer: Answer | None, size: int, what: str | None = None) -> None:
        description = what or (answer.description if answer else "no readable answer")
        self._log.error(
            "%s: %d message(s) are UNCONFIRMED (they may have been accepted) and are not sent again",
            description,
            size,
        )
        with self._lock:
            self._consecutive_unknown += 1
            if self._consecutive_unknown >= MAX_CONSECUTIVE_UNKNOWN and not self._stop.is_set():
                self._log.error(
                    "%d requests in a row got no readable answer: stopping; the messages not sent yet "
                    "are NOT_SENT (a task retry sends them)",
                    self._consecutive_unknown,
                )
                if answer is not None:
                    self._result.stopped_by = self._result.stopped_by or answer
                self._stop.set()
                self._changed.notify_all()

    def _stop_with(self, answer: Answer) -> None:
        with self._lock:
            if self._result.stopped_by is None:
                self._result.stopped_by = answer
                self._log.error("Stopping the send: %s", answer.description)
            self._stop.set()
            self._changed.notify_all()


def _wait_all(events: list[threading.Event], timeout: float) -> None:
    """Wait until every one of ``events`` is set, at most ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    for event in events:
        event.wait(max(deadline - time.monotonic(), 0.0))


def _fingerprint(message: Message) -> str:
    return fingerprint(message.recipient_phone, message.sender, message.message_content)


def _has_uuid(entry: Mapping[str, Any]) -> bool:
    raw = entry.get("message_uuid")
    return raw is not None and raw is not False and raw != "" and raw != 0


def _refused(entry: object) -> bool:
    """An entry that surely stands for no accepted message: an error and no uuid, or ``RATE_LIMIT``."""
    if not isinstance(entry, Mapping):
        return False
    error = entry.get("error")
    return bool(error) and (is_rate_limit(error) or not _has_uuid(entry))


def match_entries(internal_ids: list[str], entries: list[Any]) -> tuple[dict[str, Mapping[str, Any]], int]:
    """
    Match a ``simple_send`` answer's entries to the batch's messages by their exact ``internal_id``.

    Of two entries for one message the one that looks accepted wins. Returns the matched entries by
    id and how many other entries *may* stand for an accepted message (a uuid, or no error, under an
    ``internal_id`` that names no message of the batch: re-typed, trimmed, re-cased or missing).
    While there is one, no unnamed message of the batch can be called "left out".
    """
    wanted = set(internal_ids)
    by_id: dict[str, Mapping[str, Any]] = {}
    claims = 0
    for entry in entries:
        raw = entry.get("internal_id") if isinstance(entry, Mapping) else None
        key = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
        if key is None or key not in wanted:
            claims += not _refused(entry)
            continue
        current = by_id.get(key)
        if current is None or (_refused(current) and not _refused(entry)):
            by_id[key] = entry
    return by_id, claims


def judge_entry(internal_id: str, entry: Mapping[str, Any], task_id: str | None = None) -> MessageResult | None:
    """
    One entry of a ``simple_send`` answer: its result, or ``None`` when it was refused for ``RATE_LIMIT``.

    ``task_id`` is CommPeak's id of the request whose answer holds the entry.

    ``RATE_LIMIT`` (in any case) is a refusal even beside a uuid: the message is sent again. An
    entry with a ``message_uuid`` is accepted whatever falsy ``error`` rides with it (``null``,
    ``""``, ``false``, ``0``); one with a uuid *and* another error keeps both (never sent again: the
    API knows it). Without a uuid: another error is final, and no error at all is ``UNCONFIRMED``
    (the API said nothing either way).
    """
    raw_uuid, error = entry.get("message_uuid"), entry.get("error")
    if is_rate_limit(error):
        return None
    present = _has_uuid(entry)
    message_uuid = safe_token(raw_uuid) if present else None
    if present and message_uuid is None:
        return MessageResult(internal_id, None, UNCONFIRMED, task_id)  # a uuid of a shape we cannot keep
    if message_uuid is not None:
        return MessageResult(internal_id, message_uuid, safe_code(error) if error else None, task_id)
    if not error:
        return MessageResult(internal_id, None, UNCONFIRMED, task_id)
    return MessageResult(internal_id, None, safe_code(error), task_id)
