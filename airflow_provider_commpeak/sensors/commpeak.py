"""The sensor that waits for CommPeak delivery receipts."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_commpeak import _metrics as metrics
from airflow_provider_commpeak._engine.allowance import allowed_failures_problems, failures_allowed
from airflow_provider_commpeak._engine.arguments import hook_params_problems, int_problems
from airflow_provider_commpeak._engine.message_uuids import (
    SentMessage,
    iter_sent,
    name_messages,
    read_message_uuids,
    report_path_of,
)
from airflow_provider_commpeak._engine.report import STATUS_COLUMNS, is_report_file, write_status_report
from airflow_provider_commpeak._engine.status import DEFAULT_FAILURE_STATUSES, DEFAULT_SUCCESS_STATUSES
from airflow_provider_commpeak._engine.tracking import DeliverySnapshot, DeliveryTracker
from airflow_provider_commpeak._input.records import as_storage_path, path_exists, same_location
from airflow_provider_commpeak.exceptions import (
    CommPeakApiError,
    CommPeakDeliveryError,
    CommPeakError,
    CommPeakValidationError,
)
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.triggers.commpeak import SmsStatusTrigger

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

__all__ = ["SmsStatusSensor", "read_message_uuids"]


#: How many failed messages a delivery failure names (by ``internal_id`` and line).
MAX_NAMED_FAILURES = 20
#: Above this many messages the per-message statuses leave XCom (see ``status_report_path``).
MAX_XCOM_RESULTS = 10_000
#: Airflow's own deferral timeout fires this long after the trigger's deadline: a backstop for a
#: trigger that stopped answering, late enough that the trigger's ``timeout`` event (which says how
#: many messages are still pending) normally arrives first.
DEFERRAL_TIMEOUT_GRACE = timedelta(seconds=60)


def _status_set(value: Any, name: str) -> frozenset[str]:
    """Statuses as the sensor compares them: a string is one status (a rendered template often is)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(s, str) and s.strip() for s in value):
        raise CommPeakValidationError([f"{name} must be a list of status names"], what="arguments")
    return frozenset(s.strip().lower() for s in value)


class SmsStatusSensor(BaseSensorOperator):
    """
    Wait until every message reached a final delivery status.

    Done when each message is in a success or failure status; fails as soon as failures exceed
    ``allowed_failures`` (there is no point waiting longer). Each poke asks only about messages not
    yet final, ``status_batch_size`` uuids per request, and logs one line of counts; the end logs a
    one-line verdict.

    Returns ``{"statuses": {uuid: status}, "succeeded": n, "failed": n}``. Above
    ``max_xcom_results`` messages XCom holds counts instead: ``{"total", "succeeded", "failed",
    "pending", "counts": {status: n}, "failed_uuids": [...], "status_report_path"}``, and the
    per-message statuses go to ``status_report_path`` if given.

    In deferrable mode the sensor pokes once, then hands over to
    :class:`~airflow_provider_commpeak.triggers.commpeak.SmsStatusTrigger` and frees its worker slot;
    given a send report file, only its path travels to the triggerer.

    :param message_uuids: The uuids to wait for: a list, an XComArg, the whole send report or
        summary, or the path of a report file. (templated)
    :param commpeak_conn_id: The CommPeak connection. (templated)
    :param success_statuses: Statuses that mean delivered; a string is one status. (templated)
    :param failure_statuses: Statuses that mean it will never be delivered. (templated)
    :param allowed_failures: How many messages may fail before the task fails: an int is a count,
        a float in (0, 1) a fraction of all messages.
    :param status_batch_size: At most this many uuids per status request (1-10000).
    :param deferrable: Wait in the triggerer instead of a worker slot (default: the
        ``[operators] default_deferrable`` setting).
    :param max_consecutive_errors: Deferrable mode: how many failed polls in a row end the wait.
    :param max_xcom_results: The most messages whose statuses go to XCom one by one.
    :param status_report_path: Where to write the delivery report when the wait ends (success or
        failure): per message of the send, ``message_uuid, status, internal_id, line, send_error``
        (``.csv``/``.jsonl``, local or ObjectStoragePath; rows in the send report's order). Give ``message_uuids`` the
        send's whole output (``send.output``) for ``internal_id`` and ``line``. (templated)
    :param hook_params: Settings of the :class:`~airflow_provider_commpeak.hooks.commpeak.CommPeakHook`
        (``timeout``, ``max_retries``, ``backoff_base``, ``backoff_max``, ``rate_limit_timeout``),
        checked at DAG parse; they travel to the trigger when deferred.
    """

    template_fields: Sequence[str] = (
        "message_uuids",
        "commpeak_conn_id",
        "success_statuses",
        "failure_statuses",
        "status_report_path",
    )
    ui_color = "#e9c46a"

    def __init__(
        self,
        *,
        message_uuids: Any,
        commpeak_conn_id: str = "commpeak_default",
        success_statuses: Sequence[str] | str = DEFAULT_SUCCESS_STATUSES,
        failure_statuses: Sequence[str] | str = DEFAULT_FAILURE_STATUSES,
        allowed_failures: int | float = 0,
        status_batch_size: int = 500,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_consecutive_errors: int = 5,
        max_xcom_results: int = MAX_XCOM_RESULTS,
        status_report_path: Any = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        problems = allowed_failures_problems(allowed_failures)
        problems += int_problems(
            status_batch_size=status_batch_size,
            max_consecutive_errors=max_consecutive_errors,
            max_xcom_results=max_xcom_results,
        )
        problems += hook_params_problems(hook_params)
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
        self.max_xcom_results = max_xcom_results
        self.status_report_path = status_report_path
        self.hook_params = dict(hook_params or {})
        #: Where the wait stands, kept across pokes in poke mode (a rescheduled sensor starts afresh).
        self._tracker: DeliveryTracker | None = None
        #: The running task's context (for metric tags).
        self._context: Context | None = None

    @cached_property
    def hook(self) -> CommPeakHook:
        """The CommPeak hook (created on first use, never at DAG parse time)."""
        return CommPeakHook(commpeak_conn_id=self.commpeak_conn_id, **self.hook_params)

    @property
    def _success(self) -> frozenset[str]:
        return _status_set(self.success_statuses, "success_statuses")

    @property
    def _failure(self) -> frozenset[str]:
        return _status_set(self.failure_statuses, "failure_statuses")

    def _allowed(self, total: int) -> int:
        return failures_allowed(self.allowed_failures, total)

    # -- poking ------------------------------------------------------------------------------------

    def _get_tracker(self) -> DeliveryTracker:
        if self._tracker is None:
            uuids = read_message_uuids(self.message_uuids)
            self._tracker = DeliveryTracker(
                uuids,
                success_statuses=self._success,
                failure_statuses=self._failure,
                keep_statuses=len(uuids) <= self.max_xcom_results,
            )
        return self._tracker

    def poke(self, context: Context) -> PokeReturnValue:
        self._context = context
        tracker = self._get_tracker()
        if len(tracker.pending):
            tracker.update(self.hook.get_statuses(tracker.pending, batch_size=self.status_batch_size))
        snapshot = tracker.snapshot
        self.log.info("Waiting for delivery: %s", snapshot.describe())
        verdict = snapshot.verdict(self._allowed(snapshot.total))
        if verdict.too_many_failures:
            self._fail(snapshot)
        if not verdict.done:
            return PokeReturnValue(is_done=False)
        self._log_verdict(snapshot)
        return PokeReturnValue(is_done=True, xcom_value=self._result(snapshot))

    def execute(self, context: Context) -> Any:
        if self.status_report_path is not None:
            self._check_status_report_path()  # before waiting, not after
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
        if self._tracker is None:
            return "No status was read"
        snapshot = self._tracker.snapshot
        return f"{snapshot.pending} of {snapshot.total} message(s) still pending ({snapshot.describe()})"

    # -- outcomes ----------------------------------------------------------------------------------

    def _log_verdict(self, snapshot: DeliverySnapshot) -> None:
        metrics.delivery(snapshot.summary(), metrics.task_tags(self._context))
        self.log.info(
            "Delivery: %s; %d failed, %d allowed",
            snapshot.describe(),
            snapshot.failed,
            self._allowed(snapshot.total),
        )

    def _fail(self, snapshot: DeliverySnapshot) -> NoReturn:
        metrics.delivery(snapshot.summary(), metrics.task_tags(self._context))
        message = (
            f"{snapshot.failed} of {snapshot.total} message(s) failed delivery, more than the "
            f"{self._allowed(snapshot.total)} allowed ({snapshot.describe()})"
        )
        try:
            named = name_messages(self.message_uuids, snapshot.failed_uuids, limit=MAX_NAMED_FAILURES)
        except (CommPeakError, OSError, ValueError) as exc:  # naming them must not hide the failure
            self.log.warning("Could not name the failed messages: %s", exc)
            named = []
        if named:
            more = ", ..." if snapshot.failed > len(named) else ""
            message += f". Failed: {', '.join(named)}{more}"
        if self.status_report_path is not None:
            try:
                message += f". Every message's status: {self._write_status_report()}"
            except (CommPeakError, OSError, ValueError) as exc:
                self.log.warning("Could not write the status report: %s", exc)
        else:
            message += ". Pass status_report_path for every message's status, internal_id and line in a file"
        self._give_up(CommPeakDeliveryError(message, statuses=dict(snapshot.statuses or {})))

    def _give_up(self, error: Exception) -> NoReturn:
        """Log ``error`` and raise it, or skip the task with its text under ``soft_fail``."""
        self.log.error("Delivery: %s", error)
        if self.soft_fail:
            raise AirflowSkipException(str(error))
        raise error

    def _result(self, snapshot: DeliverySnapshot) -> dict[str, Any]:
        """The XCom value: statuses one by one when few, else counts; and the status report's path."""
        written = None if self.status_report_path is None else str(self._write_status_report())
        if snapshot.statuses is not None:
            result: dict[str, Any] = {
                "statuses": dict(snapshot.statuses),
                "succeeded": snapshot.succeeded,
                "failed": snapshot.failed,
            }
            if written is not None:
                result["status_report_path"] = written
            return result
        summary = snapshot.summary()
        summary["status_report_path"] = written
        return summary

    def _check_status_report_path(self) -> Any:
        """The status report's path, refused if writing it would destroy a file that is not one."""
        path = as_storage_path(self.status_report_path)
        source = report_path_of(self.message_uuids)
        if source is not None and same_location(as_storage_path(source), path):
            raise CommPeakValidationError(
                ["status_report_path is the send report itself: writing it would destroy the uuids"],
                what="arguments",
            )
        if path_exists(path) and not is_report_file(path, STATUS_COLUMNS):
            raise CommPeakValidationError(
                ["status_report_path names an existing file that is not a status report; refusing to overwrite it"],
                what="arguments",
            )
        return path

    def _write_status_report(self) -> Any:
        """Read every message's status once more and write the delivery report to ``status_report_path``."""
        path = self._check_status_report_path()
        written = write_status_report(path, self._delivery_rows())
        self.log.info("Wrote the status of %d message(s) to %s", written, path)
        return path

    def _delivery_rows(self) -> Iterator[dict[str, Any]]:
        """Each message of the send with its status, statuses read a batch at a time."""
        batch: list[SentMessage] = []
        for sent in iter_sent(self.message_uuids):
            batch.append(sent)
            if len(batch) >= self.status_batch_size:
                yield from self._with_statuses(batch)
                batch = []
        yield from self._with_statuses(batch)

    def _with_statuses(self, batch: list[SentMessage]) -> Iterator[dict[str, Any]]:
        uuids = list(dict.fromkeys(sent.message_uuid for sent in batch if sent.message_uuid))
        statuses = self.hook.get_statuses(uuids, batch_size=self.status_batch_size) if uuids else {}
        for sent in batch:
            row = sent._asdict()
            row["status"] = statuses.get(sent.message_uuid) if sent.message_uuid else None
            yield row

    # -- deferral ----------------------------------------------------------------------------------

    def _defer(self, started: float) -> None:
        tracker = self._get_tracker()
        timeout = timedelta(seconds=float(self.timeout)) if self.timeout is not None else None
        path = report_path_of(self.message_uuids)
        source: dict[str, Any] = (
            {"report_path": str(path)}
            if path is not None
            else {
                "message_uuids": list(tracker.pending),
                "settled_counts": dict(tracker.snapshot.final_counts),
                "settled_failed_uuids": list(tracker.snapshot.failed_uuids),
            }
        )
        self.defer(
            trigger=SmsStatusTrigger(
                commpeak_conn_id=self.commpeak_conn_id,
                success_statuses=sorted(self._success),
                failure_statuses=sorted(self._failure),
                allowed_failures=self._allowed(tracker.total),
                poll_interval=float(self.poke_interval),
                end_time=started + timeout.total_seconds() if timeout is not None else None,
                status_batch_size=self.status_batch_size,
                max_consecutive_errors=self.max_consecutive_errors,
                hook_params=self.hook_params or None,
                **source,
            ),
            method_name="execute_complete",
            timeout=timeout + DEFERRAL_TIMEOUT_GRACE if timeout is not None else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Turn the trigger's event (counts) into the return value, a failure, a timeout or a skip."""
        self._context = context
        status = event.get("status")
        if status in ("success", "failure"):
            snapshot = DeliverySnapshot.from_event(event, success=self._success, failure=self._failure)
            try:
                snapshot = self._whole_snapshot(snapshot)
            except CommPeakError as exc:  # the trigger saw every message final: its counts stand
                self.log.warning("Could not read the statuses once more, reporting the trigger's counts: %s", exc)
            if status == "failure" or snapshot.verdict(self._allowed(snapshot.total)).too_many_failures:
                self._fail(snapshot)
            self._log_verdict(snapshot)
            return self._result(snapshot)
        text = event.get("message") or "The trigger gave up"
        if status == "timeout":
            if event.get("total") is not None:
                snapshot = DeliverySnapshot.from_event(event, success=self._success, failure=self._failure)
                try:
                    snapshot = self._whole_snapshot(snapshot)
                except CommPeakError as exc:  # the deadline has passed: say what the trigger knew
                    self.log.warning("Could not read the statuses once more: %s", exc)
                text = (
                    f"Deadline passed: {snapshot.pending} of {snapshot.total} message(s) still pending "
                    f"({snapshot.describe()})"
                )
            self._give_up(AirflowSensorTimeout(text))
        if event.get("total") is not None:
            snapshot = DeliverySnapshot.from_event(event, success=self._success, failure=self._failure)
            text = f"{text}. {snapshot.pending} of {snapshot.total} message(s) still pending ({snapshot.describe()})"
        raise CommPeakApiError(text)

    def _whole_snapshot(self, event_snapshot: DeliverySnapshot) -> DeliverySnapshot:
        """
        The trigger's counts cover the messages pending when the sensor deferred. For up to
        ``max_xcom_results`` messages, read every status once more: the result then covers all of them,
        one by one (for XCom), including those already final before the deferral.
        """
        if event_snapshot.total > self.max_xcom_results:
            return event_snapshot
        tracker = self._get_tracker()
        tracker.update(self.hook.get_statuses(tracker.pending, batch_size=self.status_batch_size))
        return tracker.snapshot
