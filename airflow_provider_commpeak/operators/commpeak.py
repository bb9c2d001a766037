"""The operator that sends SMS through CommPeak's SMS Streams API."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_commpeak.exceptions import (
    CommPeakAuthError,
    CommPeakSendError,
    CommPeakValidationError,
)
from airflow_provider_commpeak.hooks.report import NOT_SENT, UNCONFIRMED, SendReport, SendSummary
from airflow_provider_commpeak.utils.allowance import check_allowed_failures, failures_allowed
from airflow_provider_commpeak.utils.sources import as_storage_path

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
    from airflow_provider_commpeak.operators.send_ledger import SendLedger

_NOT_SENT: dict[str, str | None] = {"message_uuid": None, "error": NOT_SENT}

#: The keys of the report, each also pushed to XCom on its own (``send.output["message_uuids"]``).
REPORT_KEYS = ("task_ids", "message_uuids", "results", "accepted", "failed")
#: The keys of the summary pushed instead when the results go to ``report_path``.
SUMMARY_KEYS = ("report_path", "messages", "accepted", "failed", "errors")
#: Above this many messages the per-message report goes to ``report_path``, not XCom.
MAX_XCOM_RESULTS = 10_000


class SendSmsOperator(BaseOperator):
    """
    Send SMS through CommPeak: validated, batched, rate-limit aware, never resending an accepted one.

    Give ``messages``, or ``recipients`` with ``message_content``, or ``messages_path`` (a CSV or JSON
    Lines file, streamed). Every message is checked before anything is sent; any problem fails the
    task with all problems listed and nothing sent.

    Returns (and pushes to XCom, each key also on its own) the report ``{"task_ids",
    "message_uuids", "results": {internal_id: {"message_uuid", "error"}}, "accepted", "failed"}``.
    With ``report_path`` the per-message results go to that file instead and XCom holds the summary
    ``{"report_path", "messages", "accepted", "failed", "errors"}``. Neither holds a phone number or
    a message text.

    .. seealso::
        The README's "SendSmsOperator" section.

    :param messages: A list of ``{"recipient_phone", "message_content", "sender", "internal_id"}``
        mappings; ``sender`` and ``internal_id`` are optional. (templated; an XComArg works)
    :param recipients: Phone numbers to send ``message_content`` to, one message each. (templated)
    :param message_content: The text sent to every number of ``recipients``. (templated)
    :param messages_path: A CSV or JSON Lines file of messages, local or an ObjectStoragePath URL
        such as ``s3://bucket/audience.csv``; read in constant memory. Needs ``report_path``.
        (templated)
    :param messages_format: ``csv`` or ``jsonl`` when the file's suffix does not say.
    :param report_path: Write each message's result (``internal_id, message_uuid, error``) to this
        ``.csv`` or ``.jsonl`` file, local or ObjectStoragePath URL, and keep XCom to a summary.
        Required above ``max_xcom_results`` messages. (templated)
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
    :param max_xcom_results: The most messages whose per-message report goes to XCom; more need
        ``report_path``.
    """

    template_fields: Sequence[str] = (
        "messages",
        "recipients",
        "message_content",
        "messages_path",
        "report_path",
        "sender",
        "commpeak_conn_id",
    )
    template_fields_renderers = {"messages": "json", "recipients": "json"}
    ui_color = "#f4a261"

    def __init__(
        self,
        *,
        messages: Any = None,
        recipients: Any = None,
        message_content: str | None = None,
        messages_path: Any = None,
        messages_format: str | None = None,
        report_path: Any = None,
        sender: str | None = None,
        commpeak_conn_id: str = "commpeak_default",
        batch_size: int = 100,
        allowed_failures: int | float = 0,
        max_concurrency: int = 4,
        max_attempts: int = 8,
        resend_unconfirmed: bool = False,
        max_xcom_results: int = MAX_XCOM_RESULTS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        given = [
            name
            for name, value in (
                ("messages", messages),
                ("recipients", recipients),
                ("messages_path", messages_path),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise CommPeakValidationError(
                ["pass exactly one of messages, recipients (with message_content) or messages_path"],
                what="arguments",
            )
        if recipients is not None and message_content is None:
            raise CommPeakValidationError(["recipients needs message_content"], what="arguments")
        if messages_path is not None and report_path is None:
            raise CommPeakValidationError(["messages_path needs report_path"], what="arguments")
        check_allowed_failures(allowed_failures)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise CommPeakValidationError(["batch_size must be an int >= 1"], what="arguments")
        self.messages = messages
        self.recipients = recipients
        self.message_content = message_content
        self.messages_path = messages_path
        self.messages_format = messages_format
        self.report_path = report_path
        self.sender = sender
        self.commpeak_conn_id = commpeak_conn_id
        self.batch_size = batch_size
        self.allowed_failures = allowed_failures
        self.max_concurrency = max_concurrency
        self.max_attempts = max_attempts
        self.resend_unconfirmed = resend_unconfirmed
        self.max_xcom_results = max_xcom_results
        self._input = given[0]

    @cached_property
    def hook(self) -> CommPeakHook:
        """The CommPeak hook (created on first use, never at DAG parse time)."""
        from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

        return CommPeakHook(commpeak_conn_id=self.commpeak_conn_id)

    # -- input -------------------------------------------------------------------------------------

    def _raw_messages(self) -> Any:
        """The messages as given, before validation (the shorthand expanded)."""
        if self._input == "messages":
            return self.messages
        from airflow_provider_commpeak.utils.validation import expand_recipients

        return expand_recipients(self.recipients, self.message_content)

    def _internal_id_factory(self, context: Context) -> Callable[[int], str]:
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

        ledger = SendLedger.from_context(context)
        if not ledger.durable:
            self.log.warning(
                "This Airflow has no task_state_store (Airflow >= 3.3): if this task is retried, "
                "every message is sent again. See the README, 'Retries and duplicates'."
            )
        if self._input == "messages_path" or self.report_path is not None:
            return self._execute_to_file(context, ledger)
        messages = self.prepare_messages(context)
        if len(messages) > self.max_xcom_results:
            raise CommPeakValidationError(
                [
                    f"{len(messages)} messages: their per-message report is too big for XCom "
                    f"(max_xcom_results={self.max_xcom_results}); pass report_path"
                ],
                what="arguments",
            )
        earlier = ledger.earlier_report()
        to_send = [m for m in messages if not self._settled_earlier(m["internal_id"], earlier)]
        self.log.info(
            "%d message(s) to send, %d already settled by an earlier try",
            len(to_send),
            len(messages) - len(to_send),
        )
        report = SendReport()
        try:
            if to_send:
                report = self.hook.send_messages(
                    to_send, on_batch_done=ledger.record, validate=False, **self._send_options()
                )
        except CommPeakAuthError as exc:
            report = exc.report if isinstance(exc.report, SendReport) else report
            self._publish(context, self._combine(messages, earlier, report).to_dict(), REPORT_KEYS)
            raise
        final = self._combine(messages, earlier, report)
        data = final.to_dict()
        self._publish(context, data, REPORT_KEYS)
        self._enforce_allowed_failures(final.failed, len(final.results), final.describe_errors(), data)
        return data

    def _execute_to_file(self, context: Context, ledger: SendLedger) -> dict[str, Any]:
        """Stream the messages and write the per-message report to ``report_path``."""
        earlier = ledger.earlier_report()
        settled = {k: v for k, v in earlier.results.items() if self._settled_earlier(k, earlier)}
        source = self.messages_path if self._input == "messages_path" else self._raw_messages()
        if self._input == "messages_path":
            source = as_storage_path(source)
        try:
            summary = self.hook.send_messages_from(
                source,
                report_path=as_storage_path(self.report_path),
                source_format=self.messages_format,
                default_sender=self.sender,
                make_internal_id=self._internal_id_factory(context),
                settled=settled,
                on_batch_done=ledger.record,
                **self._send_options(),
            )
        except CommPeakAuthError as exc:
            if isinstance(exc.report, SendSummary):
                self._publish(context, exc.report.to_dict(), SUMMARY_KEYS)
            raise
        data = summary.to_dict()
        self._publish(context, data, SUMMARY_KEYS)
        self._enforce_allowed_failures(summary.failed, summary.messages, summary.describe_errors(), data)
        return data

    def _send_options(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "max_attempts": self.max_attempts,
            "max_concurrency": self.max_concurrency,
        }

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
        combined = SendReport(
            task_ids=[*earlier.task_ids, *(t for t in now.task_ids if t not in earlier.task_ids)]
        )
        for message in messages:
            internal_id = message["internal_id"]
            result = now.results.get(internal_id) or earlier.results.get(internal_id) or _NOT_SENT
            combined.record(internal_id, result["message_uuid"], result["error"])
        return combined

    @staticmethod
    def _publish(context: Context, data: dict[str, Any], keys: Sequence[str]) -> None:
        """Push each key of the report to XCom on its own (the whole report is the return value)."""
        ti = context["ti"]
        for key in keys:
            ti.xcom_push(key=key, value=data[key])

    def _enforce_allowed_failures(self, failed: int, total: int, errors: str, data: dict[str, Any]) -> None:
        limit = failures_allowed(self.allowed_failures, total)
        if failed > limit:
            raise CommPeakSendError(
                f"{failed} of {total} message(s) failed ({errors}); "
                f"allowed_failures={self.allowed_failures!r} permits {limit}. "
                f"{total - failed} were accepted and will not be resent by a retry of this task "
                "on Airflow >= 3.3.",
                report=data,
            )
        if failed:
            self.log.warning(
                "%d message(s) failed (%s), within allowed_failures=%r", failed, errors, self.allowed_failures
            )
