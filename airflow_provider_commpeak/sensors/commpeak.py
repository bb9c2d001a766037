"""The sensor that waits for CommPeak delivery receipts."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_commpeak._engine.allowance import allowed_failures_problems, failures_allowed
from airflow_provider_commpeak._engine.delivery import (
    DEFAULT_FAILURE_STATUSES,
    DEFAULT_SUCCESS_STATUSES,
    describe_statuses,
    is_final,
    judge_delivery,
)
from airflow_provider_commpeak.exceptions import (
    CommPeakApiError,
    CommPeakDeliveryError,
    CommPeakValidationError,
)

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook


def read_message_uuids(value: Any) -> list[str]:
    """
    Accept a list of uuids, a ``SendSmsOperator`` report or summary, or the path of a report file.

    From a report file (``report_path``, CSV or JSON Lines, local or ObjectStoragePath URL) the uuids
    of the accepted messages are read, streaming.

    :raises CommPeakValidationError: For anything else.
    """
    if isinstance(value, Mapping):
        if "message_uuids" in value:
            value = value["message_uuids"]
        elif "report_path" in value:
            value = value["report_path"]
        else:
            raise CommPeakValidationError(
                [
                    "message_uuids: a mapping must be a SendSmsOperator report ('message_uuids') or summary "
                    "('report_path')"
                ],
                what="arguments",
            )
    if isinstance(value, str) or hasattr(value, "open"):
        return _uuids_from_report(value)
    if value is None or isinstance(value, bytes) or not isinstance(value, Sequence):
        raise CommPeakValidationError(
            [
                f"message_uuids must be a list of uuids, a send report or a report path, got {type(value).__name__}"
            ],
            what="arguments",
        )
    bad = [i for i, uuid in enumerate(value) if not isinstance(uuid, str) or not uuid]
    if bad:
        raise CommPeakValidationError(
            [f"message_uuids[{i}] is not a non-empty string" for i in bad], what="arguments"
        )
    return list(dict.fromkeys(value))


def _uuids_from_report(path: Any) -> list[str]:
    from airflow_provider_commpeak._engine.report import iter_report
    from airflow_provider_commpeak._input.records import as_storage_path

    try:
        return [r.message_uuid for r in iter_report(as_storage_path(path)) if r.accepted and r.message_uuid]
    except (OSError, ValueError) as exc:
        raise CommPeakValidationError(
            [f"message_uuids {str(path)[:80]!r} is a string, so a report file, but it cannot be read: {exc}"],
            what="arguments",
        ) from None


def _status_set(value: Any, name: str) -> frozenset[str]:
    """Statuses as the sensor compares them: a string is one status (a rendered template often is)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
        isinstance(s, str) and s.strip() for s in value
    ):
        raise CommPeakValidationError([f"{name} must be a list of status names"], what="arguments")
    return frozenset(s.strip().lower() for s in value)


class SmsStatusSensor(BaseSensorOperator):
    """
    Wait until every message reached a final delivery status.

    Done when each message is in a success or failure status; fails as soon as failures exceed
    ``allowed_failures`` (there is no point waiting longer). Each poke asks only about messages not
    yet final, ``status_batch_size`` uuids per request. Returns ``{"statuses": {uuid: status},
    "succeeded": n, "failed": n}``.

    In deferrable mode the sensor pokes once, then hands over to
    :class:`~airflow_provider_commpeak.triggers.commpeak.SmsStatusTrigger` and frees its worker slot.

    :param message_uuids: The uuids to wait for: a list, an XComArg, or the whole send report.
        (templated)
    :param commpeak_conn_id: The CommPeak connection. (templated)
    :param success_statuses: Statuses that mean delivered. (templated)
    :param failure_statuses: Statuses that mean it will never be delivered. (templated)
    :param allowed_failures: How many messages may fail before the task fails: an int is a count,
        a float in (0, 1) a fraction of all messages.
    :param status_batch_size: At most this many uuids per status request.
    :param deferrable: Wait in the triggerer instead of a worker slot (default: the
        ``[operators] default_deferrable`` setting).
    :param max_consecutive_errors: Deferrable mode: how many failed status requests in a row end
        the wait with an error.
    """

    template_fields: Sequence[str] = (
        "message_uuids",
        "commpeak_conn_id",
        "success_statuses",
        "failure_statuses",
    )
    ui_color = "#e9c46a"

    def __init__(
        self,
        *,
        message_uuids: Any,
        commpeak_conn_id: str = "commpeak_default",
        success_statuses: Sequence[str] = DEFAULT_SUCCESS_STATUSES,
        failure_statuses: Sequence[str] = DEFAULT_FAILURE_STATUSES,
        allowed_failures: int | float = 0,
        status_batch_size: int = 500,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_consecutive_errors: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        problems = allowed_failures_problems(allowed_failures)
        for name, value, maximum in (
            ("status_batch_size", status_batch_size, 10_000),
            ("max_consecutive_errors", max_consecutive_errors, 1000),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
                problems.append(f"{name} must be an int between 1 and {maximum}, got {value!r}")
        if problems:
            raise CommPeakValidationError(problems, what="arguments")
        self.message_uuids = message_uuids
        self.commpeak_conn_id = commpeak_conn_id
        self.success_statuses = success_statuses
        self.failure_statuses = failure_statuses
        self.allowed_failures = allowed_failures
        self.status_batch_size = status_batch_size
        self.deferrable = deferrable
        self.max_consecutive_errors = max_consecutive_errors
        #: Statuses seen so far; final ones are not asked about again (kept across pokes in poke mode).
        self._statuses: dict[str, str] = {}

    @cached_property
    def hook(self) -> CommPeakHook:
        """The CommPeak hook (created on first use, never at DAG parse time)."""
        from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

        return CommPeakHook(commpeak_conn_id=self.commpeak_conn_id)

    @property
    def _success(self) -> frozenset[str]:
        return _status_set(self.success_statuses, "success_statuses")

    @property
    def _failure(self) -> frozenset[str]:
        return _status_set(self.failure_statuses, "failure_statuses")

    def _result(self, statuses: dict[str, str]) -> dict[str, Any]:
        verdict = judge_delivery(
            statuses, success_statuses=self._success, failure_statuses=self._failure, allowed_failures=0
        )
        return {"statuses": statuses, "succeeded": verdict.succeeded, "failed": verdict.failed}

    def _fail(self, statuses: dict[str, str], failed: int, allowed: int) -> None:
        message = (
            f"{failed} of {len(statuses)} message(s) failed delivery, more than the {allowed} allowed "
            f"({describe_statuses(statuses)})"
        )
        if self.soft_fail:
            raise AirflowSkipException(message)
        raise CommPeakDeliveryError(message, statuses=statuses)

    def _check(self, statuses: dict[str, str]) -> bool:
        """True when done; raises when failures exceed the allowance."""
        verdict = judge_delivery(
            statuses,
            success_statuses=self._success,
            failure_statuses=self._failure,
            allowed_failures=failures_allowed(self.allowed_failures, len(statuses)),
        )
        self.log.info(
            "%d delivered, %d failed, %d pending of %d",
            verdict.succeeded,
            verdict.failed,
            verdict.pending,
            len(statuses),
        )
        if verdict.too_many_failures:
            self._fail(statuses, verdict.failed, failures_allowed(self.allowed_failures, len(statuses)))
        return verdict.done

    def poke(self, context: Context) -> PokeReturnValue:
        uuids = read_message_uuids(self.message_uuids)
        pending = [u for u in uuids if not is_final(self._statuses.get(u, ""), self._success, self._failure)]
        if pending:
            self.log.info("Asking for the status of %d pending message(s)", len(pending))
            self._statuses.update(self.hook.get_statuses(pending, batch_size=self.status_batch_size))
        statuses = {u: self._statuses[u] for u in uuids}
        done = self._check(statuses)
        return PokeReturnValue(is_done=done, xcom_value=self._result(statuses) if done else None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                raise AirflowSensorTimeout(f"{exc}. {self._pending_text()}") from None
        started = time.time()
        result = self.poke(context)
        if result.is_done:
            return result.xcom_value
        self._defer(started)

    def _pending_text(self) -> str:
        pending = [u for u, s in self._statuses.items() if not is_final(s, self._success, self._failure)]
        return f"{len(pending)} of {len(self._statuses)} message(s) still pending ({describe_statuses(self._statuses)})"

    def _defer(self, started: float) -> None:
        from airflow_provider_commpeak.triggers.commpeak import SmsStatusTrigger

        timeout = timedelta(seconds=float(self.timeout)) if self.timeout is not None else None
        end_time = started + timeout.total_seconds() if timeout is not None else None
        self.defer(
            trigger=SmsStatusTrigger(
                statuses=self._statuses,
                commpeak_conn_id=self.commpeak_conn_id,
                success_statuses=sorted(self._success),
                failure_statuses=sorted(self._failure),
                allowed_failures=failures_allowed(self.allowed_failures, len(self._statuses)),
                poll_interval=float(self.poke_interval),
                end_time=end_time,
                status_batch_size=self.status_batch_size,
                max_consecutive_errors=self.max_consecutive_errors,
            ),
            method_name="execute_complete",
            timeout=timeout,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Map the trigger's event to the return value, a failure, a timeout or a skip."""
        statuses: dict[str, str] = dict(event.get("statuses") or {})
        status = event.get("status")
        self._statuses = statuses
        if status == "success":
            return self._result(statuses)
        if status == "failure":
            verdict = judge_delivery(
                statuses, success_statuses=self._success, failure_statuses=self._failure, allowed_failures=0
            )
            self._fail(statuses, verdict.failed, failures_allowed(self.allowed_failures, len(statuses)))
        message = f"{event.get('message') or 'The trigger gave up'}. {self._pending_text()}"
        if status == "timeout":
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        raise CommPeakApiError(message)
