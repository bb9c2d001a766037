"""The operator that sends SMS through CommPeak's SMS Streams API."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_commpeak.exceptions import (
    CommPeakAuthError,
    CommPeakSendError,
    CommPeakValidationError,
)
from airflow_provider_commpeak.hooks.report import NOT_SENT, UNCONFIRMED, SendReport
from airflow_provider_commpeak.utils.allowance import check_allowed_failures, failures_allowed

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

_NOT_SENT: dict[str, str | None] = {"message_uuid": None, "error": NOT_SENT}

#: The keys of the report, each also pushed to XCom on its own (``send.output["message_uuids"]``).
REPORT_KEYS = ("task_ids", "message_uuids", "results", "accepted", "failed")


class SendSmsOperator(BaseOperator):
    """
    Send SMS through CommPeak: validated, batched, rate-limit aware, never resending an accepted one.

    Give either ``messages`` or ``recipients`` with ``message_content``. Every message is checked
    before anything is sent; any problem fails the task with all problems listed and nothing sent.

    Returns (and pushes to XCom, each key also on its own) the report ``{"task_ids",
    "message_uuids", "results": {internal_id: {"message_uuid", "error"}}, "accepted", "failed"}``;
    it holds no phone number and no message text.

    .. seealso::
        The README's "SendSmsOperator" section.

    :param messages: A list of ``{"recipient_phone", "message_content", "sender", "internal_id"}``
        mappings; ``sender`` and ``internal_id`` are optional. (templated; an XComArg works)
    :param recipients: Phone numbers to send ``message_content`` to, one message each. (templated)
    :param message_content: The text sent to every number of ``recipients``. (templated)
    :param sender: The sender of messages that name none, e.g. ``"GLOBAL"``. (templated)
    :param commpeak_conn_id: The CommPeak connection. (templated)
    :param batch_size: At most this many messages per API request.
    :param allowed_failures: How many messages may fail before the task fails: an int is a count,
        a float in (0, 1) a fraction of all messages.
    :param max_concurrency: How many batch requests are in flight at once.
    :param max_attempts: How often a rate-limited message is offered before it counts as failed.
    :param resend_unconfirmed: On a retried try, resend messages whose send had an unknown outcome
        (``UNCONFIRMED``) in an earlier try. Off by default: a duplicate SMS is usually worse than a
        missing one. Needs Airflow >= 3.3 (``task_state_store``).
    """

    template_fields: Sequence[str] = ("messages", "recipients", "message_content", "sender", "commpeak_conn_id")
    template_fields_renderers = {"messages": "json", "recipients": "json"}
    ui_color = "#f4a261"

    def __init__(
        self,
        *,
        messages: Any = None,
        recipients: Any = None,
        message_content: str | None = None,
        sender: str | None = None,
        commpeak_conn_id: str = "commpeak_default",
        batch_size: int = 100,
        allowed_failures: int | float = 0,
        max_concurrency: int = 4,
        max_attempts: int = 8,
        resend_unconfirmed: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (messages is None) == (recipients is None):
            raise CommPeakValidationError(
                ["pass either messages or recipients (with message_content), not both and not neither"],
                what="arguments",
            )
        if recipients is not None and message_content is None:
            raise CommPeakValidationError(["recipients needs message_content"], what="arguments")
        check_allowed_failures(allowed_failures)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise CommPeakValidationError(["batch_size must be an int >= 1"], what="arguments")
        self.messages = messages
        self.recipients = recipients
        self._shorthand = recipients is not None
        self.message_content = message_content
        self.sender = sender
        self.commpeak_conn_id = commpeak_conn_id
        self.batch_size = batch_size
        self.allowed_failures = allowed_failures
        self.max_concurrency = max_concurrency
        self.max_attempts = max_attempts
        self.resend_unconfirmed = resend_unconfirmed

    @cached_property
    def hook(self) -> CommPeakHook:
        """The CommPeak hook (created on first use, never at DAG parse time)."""
        from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

        return CommPeakHook(commpeak_conn_id=self.commpeak_conn_id)

    # -- input -------------------------------------------------------------------------------------

    def _raw_messages(self) -> Any:
        """The messages as given, before validation (the shorthand expanded)."""
        if not self._shorthand:
            return self.messages
        recipients = self.recipients
        if recipients is None or isinstance(recipients, (str, bytes, dict)) or not hasattr(recipients, "__iter__"):
            raise CommPeakValidationError(
                [f"recipients must be a list of phone numbers, got {type(recipients).__name__}"]
            )
        return [{"recipient_phone": number, "message_content": self.message_content} for number in recipients]

    def _internal_id_factory(self, context: Context):
        """Ids for messages without one, stable across tries of this task instance."""
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        if map_index is None:
            map_index = -1
        seed = f"{ti.dag_id}|{context['run_id']}|{ti.task_id}|{map_index}"
        prefix = f"af-{hashlib.sha256(seed.encode()).hexdigest()[:16]}"
        return lambda position: f"{prefix}-{position}"

    def prepare_messages(self, context: Context) -> list[dict[str, str]]:
        """Validate the rendered input; raise one error listing every problem (nothing sent)."""
        from airflow_provider_commpeak.utils.validation import validate_messages

        return validate_messages(
            self._raw_messages(),
            default_sender=self.sender,
            make_internal_id=self._internal_id_factory(context),
        )

    # -- execution ---------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_commpeak.operators.send_ledger import SendLedger

        messages = self.prepare_messages(context)
        ledger = SendLedger.from_context(context)
        earlier = ledger.earlier_report()
        if not ledger.durable:
            self.log.warning(
                "This Airflow has no task_state_store (Airflow >= 3.3): if this task is retried, "
                "every message is sent again. See the README, 'Retries and duplicates'."
            )
        to_send = [m for m in messages if not self._settled_earlier(m["internal_id"], earlier)]
        self.log.info(
            "%d message(s) to send, %d already settled by an earlier try", len(to_send), len(messages) - len(to_send)
        )
        report = SendReport()
        try:
            if to_send:
                report = self.hook.send_messages(
                    to_send,
                    batch_size=self.batch_size,
                    max_attempts=self.max_attempts,
                    max_concurrency=self.max_concurrency,
                    on_batch_done=ledger.record,
                )
        except CommPeakAuthError as exc:
            report = exc.report or report
            self._publish(context, self._combine(messages, earlier, report))
            raise
        final = self._combine(messages, earlier, report)
        self._publish(context, final)
        self._enforce_allowed_failures(final)
        return final.to_dict()

    def _settled_earlier(self, internal_id: str, earlier: SendReport) -> bool:
        result = earlier.results.get(internal_id)
        if result is None:
            return False
        if result["error"] == UNCONFIRMED:
            return not self.resend_unconfirmed
        return True

    @staticmethod
    def _combine(messages: list[dict[str, str]], earlier: SendReport, now: SendReport) -> SendReport:
        """One report in input order: this try's outcome, else an earlier try's."""
        combined = SendReport(task_ids=[*earlier.task_ids, *(t for t in now.task_ids if t not in earlier.task_ids)])
        for message in messages:
            internal_id = message["internal_id"]
            result = now.results.get(internal_id) or earlier.results.get(internal_id) or _NOT_SENT
            combined.record(internal_id, result["message_uuid"], result["error"])
        return combined

    def _publish(self, context: Context, report: SendReport) -> None:
        """Push each key of the report to XCom on its own (the whole report is the return value)."""
        data = report.to_dict()
        ti = context["ti"]
        for key in REPORT_KEYS:
            ti.xcom_push(key=key, value=data[key])

    def _enforce_allowed_failures(self, report: SendReport) -> None:
        limit = failures_allowed(self.allowed_failures, len(report.results))
        if report.failed > limit:
            raise CommPeakSendError(
                f"{report.failed} of {len(report.results)} message(s) failed ({report.describe_errors()}); "
                f"allowed_failures={self.allowed_failures!r} permits {limit}. "
                f"{report.accepted} were accepted and will not be resent by a retry of this task "
                "on Airflow >= 3.3.",
                report=report.to_dict(),
            )
        if report.failed:
            self.log.warning(
                "%d message(s) failed (%s), within allowed_failures=%r",
                report.failed,
                report.describe_errors(),
                self.allowed_failures,
            )
