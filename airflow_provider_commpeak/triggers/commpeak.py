"""The trigger that waits for delivery receipts in the triggerer (deferrable ``SmsStatusSensor``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_commpeak._engine.delivery import describe_statuses, is_final, judge_delivery
from airflow_provider_commpeak._engine.retry import backoff_delay
from airflow_provider_commpeak.exceptions import CommPeakAuthError, CommPeakError


class SmsStatusTrigger(BaseTrigger):
    """
    Poll ``messages_status`` asynchronously until every message is final, failures exceed the
    allowance, the deadline passes, or too many polls in a row fail. Never sends an SMS.

    A thin loop over :meth:`CommPeakHook.aget_statuses
    <airflow_provider_commpeak.hooks.commpeak.CommPeakHook.aget_statuses>`, which owns every HTTP
    concern (deadline, retries, ``Retry-After``, parsing). Fires one event ``{"status":
    "success"|"failure"|"timeout"|"error", "statuses": {uuid: status}, "message": str}``.

    :param statuses: ``{uuid: status}`` so far; uuids whose status is final are not asked about again.
    :param commpeak_conn_id: The CommPeak connection (the key is read from it, never serialized).
    :param success_statuses: Statuses that mean delivered.
    :param failure_statuses: Statuses that mean it will never be delivered.
    :param allowed_failures: How many failures are tolerated before giving up early.
    :param poll_interval: Seconds between two polls.
    :param end_time: Unix time after which the trigger fires ``timeout``; ``None`` waits forever.
    :param status_batch_size: At most this many uuids per request.
    :param max_consecutive_errors: Failed polls in a row that end the wait with ``error``.
    """

    def __init__(
        self,
        *,
        statuses: dict[str, str],
        commpeak_conn_id: str,
        success_statuses: list[str],
        failure_statuses: list[str],
        allowed_failures: int,
        poll_interval: float,
        end_time: float | None,
        status_batch_size: int = 500,
        max_consecutive_errors: int = 5,
    ) -> None:
        super().__init__()
        self.statuses = dict(statuses)
        self.commpeak_conn_id = commpeak_conn_id
        self.success_statuses = list(success_statuses)
        self.failure_statuses = list(failure_statuses)
        self.allowed_failures = allowed_failures
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.status_batch_size = status_batch_size
        self.max_consecutive_errors = max_consecutive_errors

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and JSON-able kwargs (no secret: the key is read by connection id)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "statuses": self.statuses,
                "commpeak_conn_id": self.commpeak_conn_id,
                "success_statuses": self.success_statuses,
                "failure_statuses": self.failure_statuses,
                "allowed_failures": self.allowed_failures,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "status_batch_size": self.status_batch_size,
                "max_consecutive_errors": self.max_consecutive_errors,
            },
        )

    def _event(self, status: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "statuses": dict(self.statuses), "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

        success, failure = frozenset(self.success_statuses), frozenset(self.failure_statuses)
        hook = CommPeakHook(commpeak_conn_id=self.commpeak_conn_id)
        errors = 0
        try:
            while True:
                pending = [u for u, s in self.statuses.items() if not is_final(s, success, failure)]
                wait = self.poll_interval
                try:
                    self.statuses.update(await hook.aget_statuses(pending, batch_size=self.status_batch_size))
                    errors = 0
                except CommPeakAuthError as exc:
                    yield self._event("error", str(exc))
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
                        yield self._event("error", f"{errors} status polls in a row failed, the last: {exc}")
                        return
                    wait = max(wait, backoff_delay(errors, base=self.poll_interval, cap=300.0))
                except Exception as exc:  # e.g. the connection does not exist: waiting will not help
                    yield self._event("error", f"Cannot ask for statuses ({type(exc).__name__}: {exc})")
                    return
                verdict = judge_delivery(
                    self.statuses,
                    success_statuses=success,
                    failure_statuses=failure,
                    allowed_failures=self.allowed_failures,
                )
                if verdict.too_many_failures:
                    yield self._event("failure", f"{verdict.failed} message(s) failed delivery")
                    return
                if verdict.done:
                    yield self._event("success", f"All {len(self.statuses)} message(s) are final")
                    return
                now = time.time()
                if self.end_time is not None and now >= self.end_time:
                    yield self._event(
                        "timeout",
                        f"Deadline passed with {verdict.pending} message(s) pending ({describe_statuses(self.statuses)})",
                    )
                    return
                if self.end_time is not None:
                    wait = min(wait, max(self.end_time - now, 0.0))
                await asyncio.sleep(wait)
        finally:
            await hook.aclose()
