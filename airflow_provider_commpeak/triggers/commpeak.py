"""The trigger that waits for delivery receipts in the triggerer (deferrable ``SmsStatusSensor``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_commpeak.exceptions import CommPeakApiError, CommPeakAuthError
from airflow_provider_commpeak.hooks.backoff import backoff_delay
from airflow_provider_commpeak.hooks.connection import STATUS_PATH, CommPeakConnectionConfig
from airflow_provider_commpeak.hooks.status_parser import excerpt, parse_statuses
from airflow_provider_commpeak.utils.delivery import describe_statuses, is_final, judge_delivery

if TYPE_CHECKING:
    import httpx


class SmsStatusTrigger(BaseTrigger):
    """
    Poll ``messages_status`` asynchronously until every message is final, failures exceed the
    allowance, the deadline passes, or too many requests in a row fail. Never sends an SMS.

    Fires one event ``{"status": "success"|"failure"|"timeout"|"error", "statuses": {uuid: status},
    "message": str}``.

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
        self._client: httpx.AsyncClient | None = None

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

    async def _config(self) -> CommPeakConnectionConfig:
        """Read the connection without blocking the event loop."""
        from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

        conn = await get_async_connection(self.commpeak_conn_id, hook=BaseHook)
        extra = await get_async_extra_dejson(conn)
        return CommPeakConnectionConfig.from_fields(
            conn_id=self.commpeak_conn_id, host=conn.host, port=conn.port, password=conn.password, extra=extra
        )

    async def _poll(
        self, client: httpx.AsyncClient, config: CommPeakConnectionConfig, pending: list[str]
    ) -> None:
        """Ask for the status of ``pending``, chunk by chunk, and record the answers."""
        for start in range(0, len(pending), self.status_batch_size):
            chunk = pending[start : start + self.status_batch_size]
            response = await client.post(config.url(STATUS_PATH), json={"message_uuids": chunk})
            if response.status_code in (401, 403):
                raise CommPeakAuthError(
                    f"CommPeak refused the API key of connection {self.commpeak_conn_id!r} "
                    f"(HTTP {response.status_code})",
                    status_code=response.status_code,
                )
            if response.status_code >= 400:
                raise CommPeakApiError(
                    f"HTTP {response.status_code} from {STATUS_PATH}: {excerpt(response.text)}",
                    status_code=response.status_code,
                )
            try:
                body = response.json()
            except ValueError:
                raise CommPeakApiError(
                    f"{STATUS_PATH} answered a body that is not JSON: {excerpt(response.text)}"
                ) from None
            self.statuses.update(parse_statuses(body, chunk))

    def _event(self, status: str, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "statuses": dict(self.statuses), "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        import httpx

        success, failure = frozenset(self.success_statuses), frozenset(self.failure_statuses)
        try:
            config = await self._config()
        except Exception as exc:
            yield self._event("error", f"Cannot read connection {self.commpeak_conn_id!r}: {exc}")
            return
        self._client = httpx.AsyncClient(
            headers=config.headers(), timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout)
        )
        errors = 0
        try:
            while True:
                pending = [u for u, s in self.statuses.items() if not is_final(s, success, failure)]
                wait = self.poll_interval
                try:
                    await self._poll(self._client, config, pending)
                    errors = 0
                except CommPeakAuthError as exc:
                    yield self._event("error", str(exc))
                    return
                except (httpx.HTTPError, CommPeakApiError) as exc:
                    errors += 1
                    self.log.warning(
                        "Status poll failed (%d in a row, %d allowed): %s",
                        errors,
                        self.max_consecutive_errors,
                        type(exc).__name__ if isinstance(exc, httpx.HTTPError) else exc,
                    )
                    if errors >= self.max_consecutive_errors:
                        yield self._event(
                            "error", f"{errors} status polls in a row failed, the last with {exc!r}"
                        )
                        return
                    wait = max(wait, backoff_delay(errors, base=self.poll_interval, cap=300.0))
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
            await self.cleanup()

    async def cleanup(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
