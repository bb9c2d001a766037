"""A notifier that sends an SMS from DAG and task callbacks and from Deadline Alerts."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.notifier import BaseNotifier
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from airflow_provider_commpeak import _metrics as metrics
from airflow_provider_commpeak._engine.alerts import RecentEvents, default_text, read_event, trim_to_segments
from airflow_provider_commpeak._engine.arguments import hook_params_problems, int_problems, seconds_problems
from airflow_provider_commpeak._engine.lookup import get_variable, set_variable
from airflow_provider_commpeak._engine.report import DUPLICATE, UNCONFIRMED, SendOutcome
from airflow_provider_commpeak._input.phones import PhoneProblem, normalize_phone
from airflow_provider_commpeak._input.safeguards import smart_encode
from airflow_provider_commpeak._input.validation import expand_recipients
from airflow_provider_commpeak.exceptions import CommPeakSendError, CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_commpeak._engine.alerts import AlertEvent

#: The events this process already alerted for: a callback firing twice for one event sends once.
_RECENT = RecentEvents()
#: Variables holding when each (DAG, task, recipient) was last alerted, for ``min_interval``.
LAST_ALERT_VARIABLE = "commpeak_last_alert.{}"


class CommPeakSmsNotifier(BaseNotifier):
    """
    Send one SMS to a few numbers when a DAG or task callback, or a Deadline Alert, fires.

    .. code-block:: python

        DAG(..., on_failure_callback=CommPeakSmsNotifier(recipients=["972524265292"], sender="ALERTS"))

    Without ``message_content`` the text says what happened, e.g. ``Airflow: etl_daily / load failed
    (try 2/3), run scheduled__2026-11-27`` (plus a link to the UI when ``[api] base_url`` is set and
    it fits). Every text is trimmed to ``max_segments`` SMS segments, ending with "...".

    One event, one alert: the messages' ids derive from the event (DAG, run, task, map index, try,
    state, recipient), and a second call for the same event in one process is skipped. With
    ``min_interval``, repeats for the same DAG/task/recipient within that many seconds are
    suppressed across runs (state kept in an Airflow Variable per DAG/task/recipient).

    A send that fails (bad input, API error, a message not accepted) is logged at error level and
    raised: Airflow logs a callback's exception, so it is never swallowed silently.

    :param recipients: Phone numbers to text. (templated)
    :param message_content: The text, e.g. ``"{{ dag.dag_id }} failed"``; default: what happened.
        (templated)
    :param sender: The sender id, e.g. ``"ALERTS"``. (templated)
    :param commpeak_conn_id: The CommPeak connection. (templated)
    :param default_region: The region of national numbers among ``recipients``, e.g. ``"IL"``.
        (templated)
    :param max_segments: Trim the text to at most this many SMS segments (default 1: one SMS).
    :param min_interval: Seconds during which a repeat alert for the same DAG/task and recipient is
        suppressed (default ``None``: never suppressed).
    :param hook_params: Settings of the :class:`~airflow_provider_commpeak.hooks.commpeak.CommPeakHook`
        (``timeout``, ``max_retries``, ``backoff_base``, ``backoff_max``, ``rate_limit_timeout``),
        checked at DAG parse.
    :param smart_encoding: Replace characters that force UCS-2 but have a GSM-7 look-alike (curly
        quotes, dashes, ellipsis...) so an alert costs one segment where it can (default ``True``).
    """

    template_fields = ("recipients", "message_content", "sender", "commpeak_conn_id", "default_region")

    def __init__(
        self,
        *,
        recipients: Sequence[str],
        message_content: str | None = None,
        sender: str,
        commpeak_conn_id: str = "commpeak_default",
        default_region: str | None = None,
        max_segments: int = 1,
        min_interval: float | None = None,
        hook_params: dict[str, Any] | None = None,
        smart_encoding: bool = True,
        **kwargs: Any,
    ) -> None:
        if AIRFLOW_V_3_1_PLUS:
            super().__init__(**kwargs)
        else:
            super().__init__()
        problems = int_problems(max_segments=max_segments) if max_segments is not None else ["max_segments is required"]
        problems += seconds_problems(min_interval=min_interval)
        problems += hook_params_problems(hook_params)
        if problems:
            raise CommPeakValidationError(problems, what="arguments")
        self.recipients = recipients
        self.message_content = message_content
        self.sender = sender
        self.commpeak_conn_id = commpeak_conn_id
        self.default_region = default_region
        self.max_segments = max_segments
        self.min_interval = min_interval
        self.hook_params = dict(hook_params or {})
        self.smart_encoding = smart_encoding

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """
        Render the templated fields, also when the context's DAG cannot make a Jinja environment.

        ``airflow dags test`` hands DAG callbacks a ``SerializedDAG``, which has no
        ``get_template_env`` (apache/airflow#64649); Deadline Alerts give no DAG at all. A sandboxed
        environment renders instead.
        """
        dag = context.get("dag")
        if jinja_env is None and (dag is None or not hasattr(dag, "get_template_env")):
            from jinja2.sandbox import SandboxedEnvironment

            jinja_env = SandboxedEnvironment(cache_size=0)
        super().render_template_fields(context, jinja_env)

    @cached_property
    def hook(self) -> CommPeakHook:
        """The CommPeak hook (created on first use)."""
        return CommPeakHook(commpeak_conn_id=self.commpeak_conn_id, **self.hook_params)

    # -- what to send ------------------------------------------------------------------------------

    def _text(self, event: AlertEvent) -> str:
        if self.message_content is None or not str(self.message_content).strip():
            return default_text(event, self.max_segments)  # ids and a URL: GSM-7 already
        text = str(self.message_content)
        return trim_to_segments(smart_encode(text) if self.smart_encoding else text, self.max_segments)

    def _recipients(self, event: AlertEvent, recipients: list[Any]) -> list[Any]:
        """The recipients not alerted for this DAG/task within ``min_interval``; each kept one is claimed."""
        if self.min_interval is None:
            return recipients
        now, kept = time.time(), []
        for recipient in recipients:
            key = _interval_key(event, recipient)
            last = _last_alert(key)
            if last is not None and now - last < self.min_interval:
                self.log.info(
                    "SMS alert for %s suppressed for one recipient: the last went out %.0f s ago (min_interval=%s)",
                    event.dag_id if event.task_id is None else f"{event.dag_id}/{event.task_id}",
                    now - last,
                    self.min_interval,
                )
            else:
                _remember_alert(key, now)  # claimed before sending: a callback racing this one is suppressed
                kept.append(recipient)
        return kept

    def _release(self, event: AlertEvent, recipients: list[Any]) -> None:
        """Give back the ``min_interval`` claims of alerts that were not accepted (they never went out)."""
        if self.min_interval is not None:
            for recipient in recipients:
                _remember_alert(_interval_key(event, recipient), 0.0)

    def _send(self, context: Context) -> SendOutcome | None:
        """One message per recipient through the hook's send pipeline; ``None`` if there was nothing to send."""
        event = read_event(context)
        text = self._text(event)
        everyone = [m["recipient_phone"] for m in expand_recipients(self.recipients, "")]
        once = {
            recipient: hashlib.sha256(f"{event.key}|{recipient!r}|{self.sender}|{text}".encode()).hexdigest()
            for recipient in everyone
        }
        fresh = [recipient for recipient in everyone if _RECENT.first_time(once[recipient])]
        if len(fresh) < len(everyone):
            self.log.info(
                "SMS alert for this event already sent by this process to %d recipient(s); not sending it again",
                len(everyone) - len(fresh),
            )
        recipients: list[Any] = []
        try:
            recipients = self._recipients(event, fresh)
            for recipient in set(fresh) - set(recipients):  # held back by min_interval: never sent
                _RECENT.forget(once[recipient])
            if not recipients:
                metrics.alert(0, len(everyone), metrics.task_tags(context))
                return None
            report = self.hook.send_messages(
                [{"recipient_phone": number, "message_content": text} for number in recipients],
                default_sender=self.sender,
                default_region=self.default_region,
                id_namespace=f"alert-{event.key}",
                max_concurrency=1,
            )
        except BaseException:
            for recipient in fresh:  # nothing was confirmed: a second call may try again
                _RECENT.forget(once[recipient])
            self._release(event, recipients)
            raise
        refused = [
            recipient
            for recipient, result in zip(recipients, (report.results or {}).values(), strict=False)
            if result["error"] is not None and result["error"] not in (UNCONFIRMED, DUPLICATE)
        ]
        for recipient in refused:  # not accepted: neither "already sent" nor counted for min_interval
            _RECENT.forget(once[recipient])
        self._release(event, refused)
        metrics.alert(report.accepted, len(everyone) - len(recipients), metrics.task_tags(context))
        return report

    def _check(self, report: SendOutcome | None) -> None:
        if report is None:
            return
        if report.failed:
            message = (
                f"SMS notification: {report.failed} of {report.messages} not accepted ({report.describe_errors()})"
            )
            self.log.error("%s", message)
            raise CommPeakSendError(message, report=report.to_dict())
        self.log.info("SMS notification accepted for %d recipient(s)", report.accepted)

    def notify(self, context: Context) -> None:
        """Send the SMS (from a DAG or task callback)."""
        try:
            report = self._send(context)
        except Exception as exc:
            self.log.error("SMS notification failed: %s", exc)
            raise
        self._check(report)

    async def async_notify(self, context: Context) -> None:
        """
        Send the SMS from the triggerer (Deadline Alerts), without blocking its event loop.

        The send pipeline is synchronous (``requests``), so it runs in a worker thread.
        """
        import asyncio

        try:
            report = await asyncio.to_thread(self._send, context)
        except Exception as exc:
            self.log.error("SMS notification failed: %s", exc)
            raise
        self._check(report)


def _interval_key(event: AlertEvent, recipient: Any) -> str:
    with contextlib.suppress(PhoneProblem):  # the send refuses a bad number anyway; any stable key will do
        recipient = normalize_phone(recipient)
    seed = f"{event.dag_id}|{event.task_id}|{recipient}"
    return LAST_ALERT_VARIABLE.format(hashlib.sha256(seed.encode()).hexdigest()[:16])


def _last_alert(key: str) -> float | None:
    """When the alert of ``key`` last went out (Unix time), or ``None``."""
    try:
        return float(get_variable(key))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _remember_alert(key: str, when: float) -> None:
    set_variable(key, str(when), description="CommPeakSmsNotifier min_interval: when this alert last went out")


send_commpeak_sms_notification = CommPeakSmsNotifier
