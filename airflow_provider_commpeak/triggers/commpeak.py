"""The trigger that waits for delivery receipts in the triggerer (deferrable ``SmsStatusSensor``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_commpeak._engine.message_uuids import iter_message_uuids
from airflow_provider_commpeak._engine.retry import backoff_delay
from airflow_provider_commpeak._engine.tracking import DeliveryTracker, chunked
from airflow_provider_commpeak.exceptions import CommPeakAuthError, CommPeakError, CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

#: A poll asks for the pending statuses this many uuids at a time (its answer is all it holds as text).
POLL_SLICE = 20_000


class SmsStatusTrigger(BaseTrigger):
    """
    Poll ``messages_status`` asynchronously until every message is final, failures exceed the
    allowance, the deadline passes, or too many polls in a row fail. Never sends an SMS.

    A thin loop over :meth:`CommPeakHook.aget_statuses
    <airflow_provider_commpeak.hooks.commpeak.CommPeakHook.aget_statuses>`, which owns every HTTP
    concern (deadline, retries, ``Retry-After``, parsing). Each poll logs one line of counts (in the
    task's log). Fires one event ``{"status": "success"|"failure"|"timeout"|"error", "message",
    "total", "succeeded", "failed", "pending", "counts": {status: n}, "failed_uuids": [...]}``:
    counts, never a map per message, so its size does not grow with the campaign.

    Give the messages as ``message_uuids``, or as ``report_path`` (a send report file): then the
    kwargs stay small whatever the number of messages and the triggerer reads the uuids itself.
    The pending uuids are kept packed (16 bytes each) and polled :data:`POLL_SLICE` at a time, so
    waiting for a million messages holds tens of MB in the triggerer, not hundreds.

    :param commpeak_conn_id: The CommPeak connection (the key is read from it, never serialized).
    :param success_statuses: Statuses that mean delivered.
    :param failure_statuses: Statuses that mean it will never be delivered.
    :param allowed_failures: How many failures are tolerated before giving up early.
    :param poll_interval: Seconds between two polls.
    :param end_time: Unix time after which the trigger fires ``timeout``; ``None`` waits forever.
    :param message_uuids: The uuids to wait for.
    :param report_path: A ``SendSmsOperator`` report file to read the accepted messages' uuids from.
    :param status_batch_size: At most this many uuids per request.
    :param max_consecutive_errors: Failed polls in a row that end the wait with ``error``.
    :param settled_counts: Messages already final when the sensor deferred, by status: counted in
        every verdict and event (they are not polled again).
    :param settled_failed_uuids: Those of them that failed (at most 1,000).
    :param hook_params: Settings of the hook (``timeout``, ``max_retries``, ``backoff_base``,
        ``backoff_max``); a failed poll waits before the next as the hook's retry policy says
        (exponential from ``poll_interval``, capped at ``backoff_max``).
    :param statuses: Deprecated (kwargs of triggers deferred by version 1.0): ``{uuid: status}``.
    """

    def __init__(
        self,
        *,
        commpeak_conn_id: str,
        success_statuses: list[str],
        failure_statuses: list[str],
        allowed_failures: int,
        poll_interval: float,
        end_time: float | None,
        message_uuids: list[str] | None = None,
        report_path: str | None = None,
        status_batch_size: int = 500,
        max_consecutive_errors: int = 5,
        settled_counts: dict[str, int] | None = None,
        settled_failed_uuids: list[str] | None = None,
        hook_params: dict[str, Any] | None = None,
        statuses: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        if statuses is not None and message_uuids is None:
            final = {*success_statuses, *failure_statuses}
            message_uuids = [uuid for uuid, status in statuses.items() if status not in final]
        if (message_uuids is None) == (report_path is None):
            raise ValueError("SmsStatusTrigger needs exactly one of message_uuids or report_path")
        self.commpeak_conn_id = commpeak_conn_id
        self.success_statuses = list(success_statuses)
        self.failure_statuses = list(failure_statuses)
        self.allowed_failures = allowed_failures
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.message_uuids = None if message_uuids is None else list(message_uuids)
        self.report_path = report_path
        self.status_batch_size = status_batch_size
        self.max_consecutive_errors = max_consecutive_errors
        self.settled_counts = dict(settled_counts or {})
        self.settled_failed_uuids = list(settled_failed_uuids or [])
        self.hook_params = dict(hook_params or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and JSON-able kwargs (no secret: the key is read by connection id)."""
        kwargs: dict[str, Any] = {
            "commpeak_conn_id": self.commpeak_conn_id,
            "success_statuses": self.success_statuses,
            "failure_statuses": self.failure_statuses,
            "allowed_failures": self.allowed_failures,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
            "status_batch_size": self.status_batch_size,
            "max_consecutive_errors": self.max_consecutive_errors,
        }
        if self.report_path is not None:
            kwargs["report_path"] = self.report_path
        else:
            kwargs["message_uuids"] = self.message_uuids
        if self.settled_counts:
            kwargs["settled_counts"] = self.settled_counts
            kwargs["settled_failed_uuids"] = self.settled_failed_uuids
        if self.hook_params:
            kwargs["hook_params"] = self.hook_params
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def _tracker(self) -> DeliveryTracker:
        def build() -> DeliveryTracker:
            uuids = self.message_uuids if self.message_uuids is not None else iter_message_uuids(self.report_path)
            return DeliveryTracker(
                uuids, success_statuses=self.success_statuses, failure_statuses=self.failure_statuses
            )

        tracker = await asyncio.to_thread(build)
        tracker.add_settled(self.settled_counts, self.settled_failed_uuids)
        return tracker

    async def _poll(self, hook: CommPeakHook, tracker: DeliveryTracker) -> None:
        """Ask for every pending status, :data:`POLL_SLICE` uuids at a time, each slice within the deadline."""
        poll = tracker.poll()
        for uuids in chunked(tracker.pending, POLL_SLICE):
            remaining = None if self.end_time is None else max(self.end_time - time.time(), 0.0)
            answer = await asyncio.wait_for(hook.aget_statuses(uuids, batch_size=self.status_batch_size), remaining)
            poll.take(uuids, answer)
        poll.finish()

    def _event(self, status: str, message: str, tracker: DeliveryTracker | None) -> TriggerEvent:
        return TriggerEvent({"status": status, "message": message, **(tracker.snapshot.summary() if tracker else {})})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = CommPeakHook(commpeak_conn_id=self.commpeak_conn_id, **self.hook_params)
        tracker: DeliveryTracker | None = None
        errors = 0
        try:
            tracker = await self._tracker()
            while True:
                wait = self.poll_interval
                try:
                    await self._poll(hook, tracker)
                    errors = 0
                except TimeoutError:
                    if self.end_time is None or time.time() < self.end_time:
                        raise  # not the deadline's: an error of the poll itself
                    pending = tracker.snapshot.pending
                    yield self._event(
                        "timeout", f"Deadline passed during a status poll with {pending} message(s) pending", tracker
                    )
                    return
                except CommPeakAuthError as exc:
                    yield self._event("error", str(exc), tracker)
                    return
                except CommPeakError as exc:
                    errors += 1
                    self.log.warning(
                        "Status poll failed (%d in a row, %d allowed): %s",
                        errors,
                        self.max_consecutive_errors,
                        exc,
                    )
                    if errors >= self.max_consecutive_errors:
                        yield self._event("error", f"{errors} status polls in a row failed, the last: {exc}", tracker)
                        return
                    cap = max(self.poll_interval, hook.retry_policy.backoff_max)
                    wait = max(wait, backoff_delay(errors, base=self.poll_interval, cap=cap))
                verdict = tracker.snapshot.verdict(self.allowed_failures)
                self.log.info("Waiting for delivery: %s", tracker.snapshot.describe())
                if verdict.too_many_failures:
                    yield self._event("failure", f"{verdict.failed} message(s) failed delivery", tracker)
                    return
                if verdict.done:
                    yield self._event("success", f"All {tracker.total} message(s) are final", tracker)
                    return
                now = time.time()
                if self.end_time is not None and now >= self.end_time:
                    yield self._event("timeout", f"Deadline passed with {verdict.pending} message(s) pending", tracker)
                    return
                if self.end_time is not None:
                    wait = min(wait, max(self.end_time - now, 0.0))
                await asyncio.sleep(wait)
        except Exception as exc:  # e.g. the connection or the report file is missing: waiting will not help
            what = (
                "; ".join(exc.problems) if isinstance(exc, CommPeakValidationError) else f"{type(exc).__name__}: {exc}"
            )
            yield self._event("error", f"Cannot ask for statuses ({what})", tracker)
        finally:
            await hook.aclose()
