"""The operator that sends SMS through CommPeak's SMS Streams API."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_commpeak import _metrics as metrics
from airflow_provider_commpeak._engine.allowance import allowed_failures_problems, failures_allowed
from airflow_provider_commpeak._engine.arguments import (
    hook_params_problems,
    int_problems,
    rate_problems,
    seconds_problems,
    valid_for_problems,
    valid_until_problems,
)
from airflow_provider_commpeak._engine.ledger import SendLedger
from airflow_provider_commpeak._engine.ledger_stores import default_report_path, store_for
from airflow_provider_commpeak._input.message import WAITING
from airflow_provider_commpeak._input.phones import mask_phone
from airflow_provider_commpeak._input.records import as_storage_path, detect_format
from airflow_provider_commpeak._input.safeguards import Safeguards, safeguard_problems
from airflow_provider_commpeak._input.validation import expand_recipients
from airflow_provider_commpeak.exceptions import CommPeakAuthError, CommPeakSendError, CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook

try:  # Airflow 3 (the standard provider), else Airflow 2.11
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger
except ImportError:  # pragma: no cover - Airflow 2.11 without the standard provider
    from airflow.triggers.temporal import DateTimeTrigger  # type: ignore[no-redef,import-not-found,unused-ignore]

if TYPE_CHECKING:
    import jinja2
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_commpeak._engine.report import SendOutcome

#: The keys of the report, each also pushed to XCom on its own (``send.output["message_uuids"]``).
REPORT_KEYS = ("task_ids", "message_uuids", "results", "accepted", "failed")
#: The keys of the summary pushed instead when the results go to ``report_path``.
SUMMARY_KEYS = ("report_path", "messages", "accepted", "failed", "errors")
#: Above this many messages the per-message report goes to ``report_path``, not XCom.
MAX_XCOM_RESULTS = 10_000
#: Template fields holding phone numbers or texts: kept off what Airflow stores once rendered.
HIDDEN_FIELDS = ("messages", "recipients", "message_content")
#: How many masked numbers a hidden field's summary shows.
MASKED_SAMPLE = 3


def _as_datetime(value: Any) -> Any:
    """An ISO 8601 text as a ``datetime`` (anything else as it is, for the check to name)."""
    if isinstance(value, str):
        try:  # Python 3.10's fromisoformat does not take a trailing "Z"
            return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def _templated(value: Any) -> bool:
    """Whether a value is known only once rendered (a Jinja template, an XComArg): checked then."""
    return (isinstance(value, str) and ("{{" in value or "{%" in value)) or hasattr(value, "resolve")


def masked_summary(name: str, value: Any) -> str:
    """What Airflow stores and shows instead of a rendered field holding numbers or texts."""
    if name == "message_content":
        return f"<hidden: a text of {len(value)} character(s)>" if isinstance(value, str) else "<hidden>"
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        return "<hidden>"  # never iterate a one-shot iterable here: the send needs it
    items = value
    numbers = [item.get("recipient_phone") if isinstance(item, Mapping) else item for item in items[:MASKED_SAMPLE]]
    sample = ", ".join(mask_phone(number) for number in numbers if isinstance(number, (str, int)))
    more = ", ..." if len(items) > MASKED_SAMPLE else ""
    what = "message(s)" if name == "messages" else "number(s)"
    return f"<hidden: {len(items)} {what}; {sample}{more}>"


class SendSmsOperator(BaseOperator):
    """
    Send SMS through CommPeak: validated, batched, paced, never resending an accepted one.

    Give ``messages``, or ``recipients`` with ``message_content``, or ``messages_path`` (a CSV or JSON
    Lines file). Every message is checked before anything is sent; any problem fails the task with
    all problems listed and nothing sent. Messages the API refuses for its rate limit are sent again,
    paced to the rate it sustains, until accepted; they are given up only when the API accepted
    nothing at all for ``rate_limit_timeout`` seconds.

    Returns (and pushes to XCom, each key also on its own) the report ``{"task_ids",
    "message_uuids", "results": {internal_id: {"message_uuid", "error"}}, "accepted", "failed"}``.
    With ``report_path`` the per-message results go to that file instead and XCom holds the summary
    ``{"report_path", "messages", "accepted", "failed", "errors"}``. Neither holds a phone number or
    a message text.

    Each batch is recorded in a send ledger as it is sent, so a retried or cleared task sends only
    what no earlier try got accepted: in ``ledger_path`` (or the ``[commpeak] ledger_path`` option)
    on any Airflow, else in the task instance's ``task_state_store`` on Airflow >= 3.3 (see the
    README, "Retries and duplicates").

    .. seealso::
        The README's "SendSmsOperator" section.

    :param messages: A list of ``{"recipient_phone", "message_content", "sender", "internal_id"}``
        mappings; ``sender`` and ``internal_id`` are optional. (templated; an XComArg works)
    :param recipients: Phone numbers (a list, not a set) to send ``message_content`` to, one message
        each. (templated)
    :param message_content: The text sent to every number of ``recipients``. (templated)
    :param messages_path: A CSV or JSON Lines file of messages, local or an ObjectStoragePath URL
        such as ``s3://bucket/audience.csv``; read once. Without ``report_path`` the per-message
        report goes beside the send ledger (``ledger_path``), else to a local temporary file; the
        summary and the log name it. (templated)
    :param messages_format: ``csv`` or ``jsonl`` when the file's suffix does not say.
    :param report_path: Write each message's result (``internal_id, message_uuid, error, task_id``) to this
        ``.csv`` or ``.jsonl`` file, local or ObjectStoragePath URL, and keep XCom to a summary.
        Required for a list of more than ``max_xcom_results`` messages. (templated)
    :param sender: The sender of messages that name none, e.g. ``"GLOBAL"``. (templated)
    :param default_region: The region of national numbers, e.g. ``"IL"`` (``052-426-5292`` is sent
        as ``972524265292``); without it a national number is refused. (templated)
    :param commpeak_conn_id: The CommPeak connection. (templated)
    :param batch_size: At most this many messages per API request (1-1000).
    :param allowed_failures: How many messages may fail before the task fails: an int is a count,
        a float in (0, 1) a fraction of all messages.
    :param max_concurrency: How many batch requests are in flight at once (1-64).
    :param rate_limit_timeout: Give up on rate-limited messages only when the API accepted nothing
        at all for this many seconds (default 600).
    :param max_rate: Send at most this many messages a second, from the first request on (default:
        no ceiling, as many as the API accepts). Leaves the rest of the key's limit to other senders;
        ``limit / k`` on each of ``k`` tasks sharing a key splits it evenly, though a task that
        finishes early leaves its share unused.
    :param hook_params: More settings of the :class:`~airflow_provider_commpeak.hooks.commpeak.CommPeakHook`
        (``timeout``, ``max_retries``, ``backoff_base``, ``backoff_max``), checked at DAG parse.
    :param ledger_path: A folder for the send ledger (a local path or any ObjectStoragePath URL, e.g.
        ``s3://bucket/commpeak-ledger``), overriding the ``[commpeak] ledger_path`` option. Needed on
        Airflow 2.11-3.2 for retries not to resend; on newer Airflow it replaces ``task_state_store``
        and outlives a Clear. (templated)
    :param resend_unconfirmed: On a retried try, resend messages whose send had an unknown outcome
        (``UNCONFIRMED``) in an earlier try. Off by default: a duplicate SMS is usually worse than a
        missing one. Needs a ledger (``ledger_path``, or ``task_state_store`` on Airflow >= 3.3).
    :param max_xcom_results: The most messages whose per-message report goes to XCom; more need
        ``report_path``.
    :param max_segments: Refuse, before anything is sent, a text taking more SMS segments than this
        (default: no cap).
    :param allow_duplicates: Send a message whose number and text repeat an earlier message's of the
        same send. By default it is not sent and is reported with error ``DUPLICATE`` (counted, not
        a failure for ``allowed_failures``).
    :param allowed_countries: Send only to these destinations: ISO regions (``"IL"``) or calling
        codes (``"44"``); a number to any other is refused at validation, with counts per country.
    :param blocked_countries: Never send to these destinations (refused at validation).
    :param max_total_segments: Refuse, before anything is sent, a campaign taking more SMS segments.
    :param prices: Price of one SMS segment per destination (ISO region or calling code), with an
        optional ``"default"``: the dry run and the log show the estimated cost per country and in all.
    :param max_cost: Refuse, before anything is sent, a campaign whose estimated cost is above this.
    :param opt_out_text: Appended to every message on a new line, e.g. ``"Reply STOP to opt out"``;
        counted in segments and ``max_segments``. (templated)
    :param smart_encoding: Replace characters that force UCS-2 but have a GSM-7 look-alike (curly
        quotes, dashes, ellipsis, no-break spaces...) where that makes the whole text GSM-7.
    :param suppression_path: A file of numbers never to text (``.txt``, ``.csv``, ``.jsonl``; local
        or ObjectStoragePath URL), read as recipients are (``default_region`` applies); a message to
        one of them is not sent and is reported ``SUPPRESSED`` (not a failure). (templated)
    :param valid_for: How long the messages are worth sending (an OTP), a ``timedelta`` or seconds,
        counted from the DAG run's start (so a retry does not extend it): no request starts after
        that, and every message not accepted by then, including one waiting out a rate limit, is
        reported ``EXPIRED`` (a failure).
    :param valid_until: The same as a timezone-aware ``datetime`` or ISO 8601 text; with both, the
        earlier wins. (templated)
    :param send_window: Quiet hours: a pair of local times, e.g. ``("08:00", "21:00")`` (it may wrap
        midnight). (templated) A message goes out only while its recipient's local time, from the time zones of
        the number, is inside it (in all of them for a number spanning several). The operator sends
        what is allowed now, defers (freeing its worker slot) until the window next opens for the
        rest, and resumes; never outside the window, never twice (needs a send ledger).
    :param send_window_days: Weekdays the window opens on, e.g. ``["mon", "tue", "wed", "thu",
        "fri"]`` (or 0-6, Monday 0); default every day.
    :param dry_run: Validate and count (messages, SMS segments, encodings, country calling codes),
        log and return it, and send nothing; needs no connection.
    :param max_attempts: Deprecated and ignored (see ``rate_limit_timeout``).
    """

    template_fields: Sequence[str] = (
        "messages",
        "recipients",
        "message_content",
        "messages_path",
        "report_path",
        "sender",
        "default_region",
        "commpeak_conn_id",
        "ledger_path",
        "opt_out_text",
        "suppression_path",
        "valid_until",
        "send_window",
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
        default_region: str | None = None,
        commpeak_conn_id: str = "commpeak_default",
        batch_size: int = 100,
        allowed_failures: int | float = 0,
        max_concurrency: int = 4,
        rate_limit_timeout: float = 600.0,
        max_rate: float | None = None,
        hook_params: dict[str, Any] | None = None,
        resend_unconfirmed: bool = False,
        ledger_path: Any = None,
        max_xcom_results: int = MAX_XCOM_RESULTS,
        max_segments: int | None = None,
        allow_duplicates: bool = False,
        allowed_countries: Sequence[str] | None = None,
        blocked_countries: Sequence[str] | None = None,
        max_total_segments: int | None = None,
        prices: Mapping[str, float] | None = None,
        max_cost: float | None = None,
        opt_out_text: str | None = None,
        smart_encoding: bool = False,
        suppression_path: Any = None,
        send_window: tuple[str, str] | None = None,
        send_window_days: Sequence[str | int] | None = None,
        valid_for: timedelta | float | None = None,
        valid_until: datetime | str | None = None,
        dry_run: bool = False,
        max_attempts: int | None = None,
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
        problems = []
        if len(given) != 1:
            problems.append("pass exactly one of messages, recipients (with message_content) or messages_path")
        if recipients is not None and message_content is None:
            problems.append("recipients needs message_content")
        if isinstance(recipients, (set, frozenset)):
            problems.append("recipients must be a list, not a set (a set has no order)")
        problems += int_problems(
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            max_xcom_results=max_xcom_results,
            max_segments=max_segments,
        )
        problems += seconds_problems(rate_limit_timeout=rate_limit_timeout)
        problems += rate_problems(max_rate=max_rate)
        problems += hook_params_problems(hook_params)
        if isinstance(hook_params, dict) and "rate_limit_timeout" in hook_params:
            problems.append("set rate_limit_timeout as the operator's argument, not in hook_params")
        problems += allowed_failures_problems(allowed_failures)
        self._safeguard_values = {
            "allowed_countries": allowed_countries,
            "blocked_countries": blocked_countries,
            "max_total_segments": max_total_segments,
            "prices": prices,
            "max_cost": max_cost,
            "smart_encoding": smart_encoding,
            "send_window_days": send_window_days,
        }
        problems += safeguard_problems(
            **self._safeguard_values,
            max_segments=max_segments,
            opt_out_text=None if _templated(opt_out_text) else opt_out_text,
            suppression_path=None if _templated(suppression_path) else suppression_path,
            send_window=(
                None
                if _templated(send_window)
                or (isinstance(send_window, (tuple, list)) and any(map(_templated, send_window)))
                else send_window
            ),
        )
        problems += valid_for_problems(valid_for)
        if not _templated(valid_until):
            problems += valid_until_problems(_as_datetime(valid_until))
        if problems:
            raise CommPeakValidationError(problems, what="arguments")
        if max_attempts is not None:
            warnings.warn(
                "SendSmsOperator(max_attempts=...) is ignored since airflow-provider-commpeak 1.1.0: "
                "rate-limited messages are resent until accepted, or until rate_limit_timeout passes "
                "with nothing accepted",
                DeprecationWarning,
                stacklevel=2,
            )
        self.messages = messages
        self.recipients = recipients
        self.message_content = message_content
        self.messages_path = messages_path
        self.messages_format = messages_format
        self.report_path = report_path
        self.sender = sender
        self.default_region = default_region
        self.commpeak_conn_id = commpeak_conn_id
        self.batch_size = batch_size
        self.allowed_failures = allowed_failures
        self.max_concurrency = max_concurrency
        self.rate_limit_timeout = rate_limit_timeout
        self.max_rate = max_rate
        self.hook_params = dict(hook_params or {})
        self.resend_unconfirmed = resend_unconfirmed
        self.ledger_path = ledger_path
        self.max_xcom_results = max_xcom_results
        self.max_segments = max_segments
        self.allow_duplicates = allow_duplicates
        self.opt_out_text = opt_out_text
        self.send_window = send_window
        self.valid_for = valid_for
        self.valid_until = valid_until
        self.suppression_path = suppression_path
        # not ``self.dry_run``: BaseOperator.dry_run() is a method Airflow calls (``tasks test --dry-run``)
        self.price_only = dry_run
        self._input = given[0]
        #: The rendered messages, numbers and text, kept off the attributes Airflow stores (see
        #: :meth:`render_template_fields`).
        self._hidden: dict[str, Any] | None = None
        #: What the last send did, for OpenLineage (paths and counts only).
        self._sent: dict[str, Any] | None = None

    @cached_property
    def hook(self) -> CommPeakHook:
        """The CommPeak hook (created on first use, never at DAG parse time)."""
        return CommPeakHook(
            commpeak_conn_id=self.commpeak_conn_id,
            rate_limit_timeout=self.rate_limit_timeout,
            max_rate=self.max_rate,
            **self.hook_params,
        )

    # -- input -------------------------------------------------------------------------------------

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """
        Render the templated fields, then hide phone numbers and texts from what Airflow stores.

        Airflow records the rendered template fields (the UI's "Rendered Templates", the metadata
        database) right after this call; ``messages``, ``recipients`` and ``message_content`` are kept
        privately for the send and replaced by a masked summary (counts and masked numbers).
        """
        super().render_template_fields(context, jinja_env)
        if self._hidden is not None:  # rendered already: the attributes hold the masked summaries
            return
        self._hidden = {name: getattr(self, name) for name in HIDDEN_FIELDS}
        for name in HIDDEN_FIELDS:
            if getattr(self, name) is not None:
                setattr(self, name, masked_summary(name, getattr(self, name)))

    def _value(self, name: str) -> Any:
        return self._hidden[name] if self._hidden is not None else getattr(self, name)

    def _source(self) -> Any:
        """What to send, as the hook takes it: a list of messages, or a file."""
        if self._input == "messages_path":
            return self.messages_path
        if self._input == "messages":
            messages = self._value("messages")
            if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
                raise CommPeakValidationError(
                    [f"expected a list of messages, got {type(messages).__name__}"]
                    + (["a file of messages goes in messages_path"] if isinstance(messages, str) else [])
                )
            return messages

        return expand_recipients(self._value("recipients"), self._value("message_content"))

    @staticmethod
    def id_namespace(context: Context) -> str:
        """
        The prefix of the ids generated for messages without ``internal_id``: one per task instance.

        ``af-<hash of dag, run, task, map index>``; the rest of each id hashes the message's content
        and occurrence, so the same messages get the same ids on every try, in any order.
        """
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        seed = f"{ti.dag_id}|{context['run_id']}|{ti.task_id}|{-1 if map_index is None else map_index}"
        return f"af-{hashlib.sha256(seed.encode()).hexdigest()[:16]}"

    # -- execution ---------------------------------------------------------------------------------

    def _ledger(self, context: Context) -> SendLedger:
        """The send ledger of this task instance (see ``ledger_path``); warns when there is none."""
        store = store_for(context, ledger_path=self.ledger_path)
        if store is None:
            self.log.warning(
                "No send ledger: if this task is retried or cleared, every message is sent again. Set "
                "SendSmsOperator(ledger_path=...) or the [commpeak] ledger_path option "
                "(AIRFLOW__COMMPEAK__LEDGER_PATH) to a folder, shared storage when tasks may retry on "
                "another worker (Airflow >= 3.3 uses the task_state_store otherwise). See the README, "
                "'Retries and duplicates'."
            )
        else:
            self.log.info("Send ledger: %s", store.where)
        return SendLedger(store, resend_unconfirmed=self.resend_unconfirmed)

    def execute(self, context: Context) -> dict[str, Any]:

        if self.price_only:
            report = self.hook.dry_run(self._source(), **self._stage_options(context))
            data = report.to_dict()
            self._publish(context, data)
            return data
        ledger = self._ledger(context)
        if self.send_window is not None and not ledger.durable:
            raise CommPeakValidationError(
                [
                    "send_window needs a send ledger (ledger_path, the [commpeak] ledger_path option, or "
                    "Airflow >= 3.3): the send resumes after deferring and must not resend what it sent"
                ],
                what="arguments",
            )
        source = self._source()
        report_path = self.report_path
        if report_path is None and self._input != "messages_path":
            self._check_fits_xcom(source)
        elif report_path is None:
            report_path = self._default_report_path(context)
        try:
            outcome = self.hook.send_messages(
                source,
                valid_until=self._deadline(context),
                batch_size=self.batch_size,
                max_concurrency=self.max_concurrency,
                report_path=report_path,
                ledger=ledger,
                **self._stage_options(context),
            )
        except CommPeakAuthError as exc:
            if exc.report is not None:
                self._publish(context, exc.report.to_dict())
            raise
        metrics.send_outcome(outcome, pace=self.hook.rate_controller.rate, tags=metrics.task_tags(context))
        self._sent = {
            "input": self.messages_path if self._input == "messages_path" else None,
            "output": outcome.report_path,
            "messages": outcome.messages,
            "accepted": outcome.accepted,
            "failed": outcome.failed,
            "segments": outcome.segments,
            "errors": dict(outcome.errors),
        }
        self._describe_report_asset(context, self._sent)
        waiting = outcome.errors.get(WAITING, 0)
        if waiting and outcome.resume_at is not None:
            self.log.info(
                "%d message(s) wait for their recipients' send window: deferring until %s, then sending them",
                waiting,
                outcome.resume_at,
            )
            self.defer(
                trigger=DateTimeTrigger(moment=datetime.fromisoformat(outcome.resume_at)),
                method_name="resume_send",
            )
        data = outcome.to_dict()
        self._publish(context, data)
        self._enforce_allowed_failures(outcome, data)
        return data

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        OpenLineage: the audience file as input, the report file as output, and a run facet of counts
        (``commpeak_send``); never a number or a text. Called by the OpenLineage provider, if installed.
        """
        from airflow_provider_commpeak._lineage import send_lineage

        return send_lineage(self._sent)

    def _describe_report_asset(self, context: Context, sent: dict[str, Any]) -> None:
        """
        When an outlet is the report file (``outlets=[Asset("file:///.../report.csv")]``), its asset
        event carries the send's counts as ``extra`` (what a downstream DAG and the UI see; no number).
        """
        report_path = sent["output"]
        if report_path is None or not self.outlets:
            return
        where = report_path if "://" in report_path else f"file://{os.path.abspath(report_path)}"
        for outlet in self.outlets:
            if getattr(outlet, "uri", None) == where:
                extra = {key: sent[key] for key in ("messages", "accepted", "failed", "errors")}
                context["outlet_events"][outlet].extra.update(extra)
                self.log.info("Asset event for the report %s carries the counts: %s", where, extra)

    def resume_send(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Back from waiting for a send window: send what is due now (the ledger skips what was sent)."""
        return self.execute(context)

    def _stage_options(self, context: Context) -> dict[str, Any]:
        return {
            "default_sender": self.sender,
            "default_region": self.default_region,
            "id_namespace": self.id_namespace(context),
            "source_format": self.messages_format,
            "max_segments": self.max_segments,
            "allow_duplicates": self.allow_duplicates,
            "safeguards": self._safeguards(),
        }

    def _safeguards(self) -> Safeguards:
        """The campaign safeguards, with the rendered footer and suppression list."""
        try:
            return Safeguards.build(
                **self._safeguard_values,
                max_segments=self.max_segments,
                opt_out_text=self.opt_out_text,
                suppression_path=self.suppression_path,
                send_window=None if self.send_window is None else tuple(self.send_window),
            )
        except ValueError as exc:
            raise CommPeakValidationError(str(exc).split("; "), what="arguments") from None

    def _deadline(self, context: Context) -> datetime | None:
        """When the messages stop being worth sending: ``valid_until``, or the run's start + ``valid_for``."""
        deadlines = []
        if self.valid_until is not None:
            until = _as_datetime(self.valid_until)
            problems = valid_until_problems(until)
            if problems:
                raise CommPeakValidationError(problems, what="arguments")
            deadlines.append(until)
        if self.valid_for is not None:
            dag_run = context.get("dag_run")
            started = getattr(dag_run, "start_date", None) or datetime.now(UTC)
            seconds = self.valid_for.total_seconds() if isinstance(self.valid_for, timedelta) else float(self.valid_for)
            deadlines.append(started + timedelta(seconds=seconds))
        deadline = min(deadlines) if deadlines else None
        if deadline is not None:
            self.log.info("The messages are valid until %s: none is sent after that", deadline.isoformat())
        return deadline

    def _default_report_path(self, context: Context) -> str:
        """Where the report of a ``messages_path`` send goes when ``report_path`` is not given (logged)."""
        try:
            suffix = (
                ".jsonl"
                if detect_format(as_storage_path(self.messages_path), self.messages_format) == "jsonl"
                else ".csv"
            )
        except ValueError:
            suffix = ".csv"  # the hook refuses the audience with its own message
        path = default_report_path(context, ledger_path=self.ledger_path, suffix=suffix)
        if "://" not in path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self.log.info("No report_path given: the per-message report goes to %s", path)
        return path

    def _check_fits_xcom(self, source: Any) -> None:
        size = len(source) if hasattr(source, "__len__") else None
        if size is not None and size > self.max_xcom_results:
            raise CommPeakValidationError(
                [
                    f"{size} messages: their per-message report is too big for XCom "
                    f"(max_xcom_results={self.max_xcom_results}); pass report_path"
                ],
                what="arguments",
            )

    @staticmethod
    def _publish(context: Context, data: dict[str, Any]) -> None:
        """Push each key of the report to XCom on its own (the whole report is the return value)."""
        ti = context["ti"]
        for key, value in data.items():
            ti.xcom_push(key=key, value=value)

    def _enforce_allowed_failures(self, outcome: SendOutcome, data: dict[str, Any]) -> None:
        total, failed = outcome.messages, outcome.failed
        limit = failures_allowed(self.allowed_failures, total)
        if failed > limit:
            raise CommPeakSendError(
                f"{failed} of {total} message(s) failed ({outcome.describe_errors()}); "
                f"allowed_failures={self.allowed_failures!r} permits {limit}. "
                f"{outcome.accepted} were accepted and will not be resent by a retry of this task "
                "where it has a send ledger (ledger_path, or task_state_store on Airflow >= 3.3).",
                report=data,
            )
        if failed:
            self.log.warning(
                "%d message(s) failed (%s), within allowed_failures=%r",
                failed,
                outcome.describe_errors(),
                self.allowed_failures,
            )
