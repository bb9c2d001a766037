"""A notifier that sends an SMS from DAG and task callbacks (``on_failure_callback`` and friends)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.notifier import BaseNotifier
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_commpeak.exceptions import CommPeakSendError

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_commpeak._engine.report import SendReport
    from airflow_provider_commpeak.hooks.commpeak import CommPeakHook


class CommPeakSmsNotifier(BaseNotifier):
    """
    Send one SMS text to a few numbers when a DAG or task callback fires.

    .. code-block:: python

        DAG(..., on_failure_callback=CommPeakSmsNotifier(
            recipients=["972524265292"], message_content="{{ dag.dag_id }} failed", sender="ALERTS"))

    A send that fails (bad input, API error, a message not accepted) raises
    :class:`~airflow_provider_commpeak.exceptions.CommPeakError` after logging it at error level:
    Airflow logs a callback's exception, so it is never swallowed silently.

    :param recipients: Phone numbers to text. (templated)
    :param message_content: The text, e.g. ``"{{ dag.dag_id }} failed"``. (templated)
    :param sender: The sender id, e.g. ``"ALERTS"``. (templated)
    :param commpeak_conn_id: The CommPeak connection. (templated)
    """

    template_fields = ("recipients", "message_content", "sender", "commpeak_conn_id")

    def __init__(
        self,
        *,
        recipients: Sequence[str],
        message_content: str,
        sender: str,
        commpeak_conn_id: str = "commpeak_default",
        **kwargs: Any,
    ) -> None:
        if AIRFLOW_V_3_1_PLUS:
            super().__init__(**kwargs)
        else:
            super().__init__()
        self.recipients = recipients
        self.message_content = message_content
        self.sender = sender
        self.commpeak_conn_id = commpeak_conn_id

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """
        Render the templated fields, also when the context's DAG cannot make a Jinja environment.

        ``airflow dags test`` hands DAG callbacks a ``SerializedDAG``, which has no
        ``get_template_env`` (apache/airflow#64649); a sandboxed environment renders instead.
        """
        dag = context.get("dag")
        if jinja_env is None and dag is not None and not hasattr(dag, "get_template_env"):
            from jinja2.sandbox import SandboxedEnvironment

            jinja_env = SandboxedEnvironment(cache_size=0)
        super().render_template_fields(context, jinja_env)

    @cached_property
    def hook(self) -> CommPeakHook:
        """The CommPeak hook (created on first use)."""
        from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

        return CommPeakHook(commpeak_conn_id=self.commpeak_conn_id)

    def _send(self) -> SendReport:
        """One message per recipient through the hook's send pipeline (bad input sends nothing)."""
        import uuid

        from airflow_provider_commpeak._input.validation import expand_recipients

        return self.hook.send_messages(
            expand_recipients(self.recipients, self.message_content),
            default_sender=self.sender,
            id_namespace=f"notify-{uuid.uuid4().hex[:12]}",
            max_concurrency=1,
        )

    def _check(self, report: SendReport) -> None:
        if report.failed:
            message = (
                f"SMS notification: {report.failed} of {len(report.results)} not accepted "
                f"({report.describe_errors()})"
            )
            self.log.error("%s", message)
            raise CommPeakSendError(message, report=report.to_dict())
        self.log.info("SMS notification accepted for %d recipient(s)", report.accepted)

    def notify(self, context: Context) -> None:
        """Send the SMS (from a callback)."""
        try:
            report = self._send()
        except Exception as exc:
            self.log.error("SMS notification failed: %s", exc)
            raise
        self._check(report)

    async def async_notify(self, context: Context) -> None:
        """Send the SMS from the triggerer's event loop, without blocking it."""
        import asyncio

        try:
            report = await asyncio.to_thread(self._send)
        except Exception as exc:
            self.log.error("SMS notification failed: %s", exc)
            raise
        self._check(report)


send_commpeak_sms_notification = CommPeakSmsNotifier
