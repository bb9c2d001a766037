"""The hook for CommPeak's SMS Streams API: sending SMS and reading delivery statuses."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_commpeak._engine.arguments import (
    int_problem,
    int_problems,
    rate_problems,
    seconds_problems,
    valid_until_problems,
)
from airflow_provider_commpeak._engine.classify import Answer, Outcome
from airflow_provider_commpeak._engine.connection import STATUS_PATH, CommPeakConnectionConfig
from airflow_provider_commpeak._engine.ledger import SendLedger
from airflow_provider_commpeak._engine.lookup import aget_connection, aget_extra, get_connection
from airflow_provider_commpeak._engine.pipeline import SendPipeline
from airflow_provider_commpeak._engine.poll_pacer import PollPacer
from airflow_provider_commpeak._engine.rate import RateController
from airflow_provider_commpeak._engine.report import (
    EXPIRED,
    FileSink,
    OutcomeSink,
    SendOutcome,
    SendReport,
    SendSummary,
    is_report_file,
)
from airflow_provider_commpeak._engine.retry import RetryPolicy
from airflow_provider_commpeak._engine.status import UNKNOWN, read_statuses
from airflow_provider_commpeak._engine.tracking import chunked
from airflow_provider_commpeak._engine.transport import AsyncTransport, SyncTransport
from airflow_provider_commpeak._input import send_window as wall_clock
from airflow_provider_commpeak._input.message import WAITING
from airflow_provider_commpeak._input.phones import check_region
from airflow_provider_commpeak._input.records import (
    as_storage_path,
    is_file_source,
    path_exists,
    same_location,
)
from airflow_provider_commpeak._input.safeguards import Safeguards
from airflow_provider_commpeak._input.staging import StageStats, stage_messages
from airflow_provider_commpeak.exceptions import (
    CommPeakApiError,
    CommPeakAuthError,
    CommPeakError,
    CommPeakKeyRefusedError,
    CommPeakValidationError,
)
from airflow_provider_commpeak.get_provider_info import UI_FIELD_BEHAVIOUR

if TYPE_CHECKING:
    import requests

    from airflow_provider_commpeak._input.staging import StagedMessages

#: Deprecated name (1.1.0) of what :meth:`CommPeakHook.dry_run` returns.
DryRunReport = StageStats

__all__ = ["CommPeakHook", "DryRunReport", "Safeguards", "SendOutcome", "SendReport", "SendSummary", "StageStats"]

#: A uuid no message has, to prove the key on ``messages_status`` without sending an SMS.
PROBE_UUID = "00000000-0000-0000-0000-000000000000"
#: Seconds a connection test may take in all (one try, no retries).
TEST_CONNECTION_TIMEOUT = 5.0
#: Default seconds without a single accepted message (while the API refuses) before a send gives up.
RATE_LIMIT_TIMEOUT = 600.0


def _check(problems: list[str]) -> None:
    if problems:
        raise CommPeakValidationError(problems, what="arguments")


class CommPeakHook(BaseHook):
    """
    Interact with CommPeak's SMS Streams API.

    One pooled ``requests.Session`` per hook, one deadline per request (connect and the whole
    answer), redirects never followed, and retries with exponential backoff and jitter (honouring
    ``Retry-After``) only where the request surely was not processed. A send whose outcome is
    unknown (a read timeout, a reset, 500/502/504 after the body went out) is never resent: its
    messages are reported ``UNCONFIRMED``. Every send of the hook shares one rate controller.

    :param commpeak_conn_id: The CommPeak connection: API key in the password, base URL in the host
        (default ``https://sendsms.commpeak.com``).
    :param timeout: Seconds one request may take in all; overrides the connection's ``timeout``
        extra (default 30).
    :param max_retries: How often a request that surely was not processed is retried.
    :param backoff_base: Seconds before the first retry; doubles each time, with jitter.
    :param backoff_max: The longest wait between two tries, ``Retry-After`` included.
    :param rate_limit_timeout: A send gives up on refused messages only when the API accepted
        nothing at all for this many seconds (default 600).
    :param max_rate: The most messages per second the hook's sends take together, from their first
        request on (default: no ceiling, as many as the API accepts). Below the key's limit it leaves
        the rest to other senders; several processes sharing a key of limit L each with ``L / k``
        get equal shares, but one does not take over a finished one's share. Status polls are not
        counted.
    :param clock: Monotonic seconds for pacing and the give-up rule (default ``time.monotonic``;
        tests pass a fake clock).
    :param sleep: Waits that many seconds while a send (or a status poll) is paced; returns ``True``
        to stop the send (default: a wait that a stopping send interrupts, ``time.sleep`` for a
        poll; tests pass the fake clock's).
    """

    conn_name_attr = "commpeak_conn_id"
    default_conn_name = "commpeak_default"
    conn_type = "commpeak"
    hook_name = "CommPeak SMS"

    def __init__(
        self,
        commpeak_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        rate_limit_timeout: float = RATE_LIMIT_TIMEOUT,
        max_rate: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], bool] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.commpeak_conn_id = commpeak_conn_id
        _check(
            seconds_problems(timeout=timeout, rate_limit_timeout=rate_limit_timeout) + rate_problems(max_rate=max_rate)
        )
        self.timeout = None if timeout is None else float(timeout)
        try:
            self.retry_policy = RetryPolicy(max_retries, backoff_base, backoff_max)
        except ValueError as exc:
            raise CommPeakValidationError([str(exc)], what="arguments") from None
        self.rate_limit_timeout = float(rate_limit_timeout)
        self.max_rate = None if max_rate is None else float(max_rate)
        self._async_transport: AsyncTransport | None = None
        self._warned_statuses: set[str] = set()
        self._clock = clock
        self._sleep = sleep

    @property
    def max_retries(self) -> int:
        return self.retry_policy.max_retries

    # -- connection --------------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return custom field behaviour (Airflow < 3.2; newer versions read provider info)."""
        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Return the extra fields of the connection form (Airflow < 3.2)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField
        from wtforms.validators import NumberRange, Optional

        return {
            "timeout": IntegerField(
                lazy_gettext("Timeout (seconds)"),
                widget=BS3TextFieldWidget(),
                validators=[Optional(), NumberRange(min=1, max=600)],
                description="Optional. Seconds one request may take in all (default 30).",
            ),
            "allow_insecure_http": BooleanField(
                lazy_gettext("Allow plain http:// to a non-loopback host"),
                default=False,
                description="Off by default: the key would travel unencrypted.",
            ),
        }

    @cached_property
    def config(self) -> CommPeakConnectionConfig:
        """The connection, read once (not at DAG parse time: only when first used)."""
        conn = get_connection(self.commpeak_conn_id)
        return self._config_from(conn.host, conn.port, conn.password, conn.extra_dejson)

    def _config_from(self, host: Any, port: Any, password: Any, extra: Any) -> CommPeakConnectionConfig:
        config = CommPeakConnectionConfig.from_fields(
            conn_id=self.commpeak_conn_id,
            host=host,
            port=port,
            password=password,
            extra=extra,
            timeout=self.timeout,
        )
        _mask_secret(config.api_key)
        return config

    @cached_property
    def transport(self) -> SyncTransport:
        """The hook's HTTP client (one pooled session)."""
        return SyncTransport(self.config, self.retry_policy, sleep=self._sleep or time.sleep)

    @cached_property
    def rate_controller(self) -> RateController:
        """The one rate controller every send of this hook shares."""
        return RateController(clock=self._clock, max_rate=self.max_rate)

    @cached_property
    def status_pacer(self) -> PollPacer:
        """Paces this hook's status requests (sync and async) once the API pushes back on them."""
        return PollPacer(self.retry_policy, self._clock)

    @property
    def session(self) -> requests.Session:
        """The hook's one pooled ``requests.Session``, carrying the ``Authorization`` header."""
        return self.transport.session

    def get_conn(self) -> requests.Session:
        """Return the hook's pooled ``requests.Session``."""
        return self.session

    def close(self) -> None:
        """Close the pooled session (the hook opens a new one if used again)."""
        if "transport" in self.__dict__:
            self.__dict__.pop("transport").close()

    async def aclose(self) -> None:
        """Close the async client of :meth:`aget_statuses`."""
        if self._async_transport is not None:
            transport, self._async_transport = self._async_transport, None
            await transport.aclose()

    def __enter__(self) -> CommPeakHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sending -----------------------------------------------------------------------------------

    def stage(
        self,
        messages: Any,
        *,
        source_format: str | None = None,
        default_sender: str | None = None,
        default_region: str | None = None,
        id_namespace: str | None = None,
        max_segments: int | None = None,
        allow_duplicates: bool = False,
        safeguards: Safeguards | None = None,
    ) -> StagedMessages:
        """
        Validate every message and stage it for sending (nothing is sent).

        Use as a context manager: a file source is staged to a local spool file, deleted on close.
        Parameters as for :meth:`send_messages`.

        :raises CommPeakValidationError: Listing every problem with its position.
        """
        try:
            region = check_region(default_region)
        except ValueError as exc:
            raise CommPeakValidationError([str(exc)], what="arguments") from None
        return stage_messages(
            as_storage_path(messages),
            source_format=source_format,
            default_sender=default_sender,
            default_region=region,
            id_namespace=id_namespace,
            max_segments=max_segments,
            allow_duplicates=allow_duplicates,
            safeguards=safeguards if safeguards is not None and safeguards.active else None,
        )

    def dry_run(self, messages: Any, **options: Any) -> StageStats:
        """
        Validate and count what :meth:`send_messages` would send, and send nothing.

        Needs no connection. Parameters as for :meth:`stage`; messages without ``internal_id`` are
        accepted (as a send with ``id_namespace`` would) unless ``id_namespace=None`` is passed.

        :returns: Messages, SMS segments (duplicates left out), encodings (GSM-7 / UCS-2) with the
            character that makes the first UCS-2 messages UCS-2, duplicates, and messages per
            country calling code; logged as well.
        :raises CommPeakValidationError: If any message is invalid.
        """
        options.setdefault("id_namespace", "dry-run")
        with self.stage(messages, **options) as staged:
            stats = staged.stats
        self.log.info("Dry run, nothing sent: %s", stats.describe())
        return stats

    def send_messages(
        self,
        messages: Any,
        *,
        batch_size: int = 100,
        max_concurrency: int = 4,
        default_sender: str | None = None,
        default_region: str | None = None,
        id_namespace: str | None = None,
        report_path: Any = None,
        source_format: str | None = None,
        ledger: SendLedger | None = None,
        on_batch_done: Callable[[SendOutcome], None] | None = None,
        max_segments: int | None = None,
        allow_duplicates: bool = False,
        safeguards: Safeguards | None = None,
        valid_until: datetime | None = None,
        max_attempts: int | None = None,
        rate_limit_backoff: float | None = None,
    ) -> SendOutcome:
        """
        Validate every message, then send them in paced batches, one ``POST /simple_send/`` each.

        Nothing is sent if any message is invalid. Messages the API refused with ``RATE_LIMIT`` or
        left out of its answer go back to a shared queue and out again as soon as the rate the API
        sustains allows; a message is given up only when the API accepted nothing at all for
        ``rate_limit_timeout`` seconds.

        :param messages: Mappings of ``internal_id``, ``sender``, ``recipient_phone``,
            ``message_content`` (a list or any iterable), or a CSV / JSON Lines file: a local path,
            an ObjectStoragePath or its URL (``s3://bucket/audience.csv``), read once.
        :param batch_size: At most this many messages per request.
        :param max_concurrency: How many requests are in flight at once.
        :param default_sender: The sender of messages that name none.
        :param default_region: The region of national numbers (``"IL"`` turns ``052-426-5292``
            into ``972524265292``); without it national numbers are refused.
        :param id_namespace: Messages without ``internal_id`` get ``<id_namespace>-<hash of their
            content and occurrence>``; ``None`` makes a missing ``internal_id`` an error.
        :param report_path: Write each message's result to this ``.csv`` or ``.jsonl`` file (local
            or ObjectStoragePath); the outcome then holds counts and the path, not the results.
        :param source_format: ``csv`` or ``jsonl`` when a file's suffix does not say.
        :param ledger: What earlier tries settled (not sent again) and where this send records each
            batch as it settles (the operator passes the task instance's ``task_state_store``).
        :param on_batch_done: Called with each batch's results once they are recorded.
        :param max_segments: Refuse (before sending anything) a text that takes more SMS segments.
        :param allow_duplicates: Send a message whose number (normalised) and text repeat an earlier
            message's of this send. By default it is not sent and is reported ``DUPLICATE`` (counted
            in the outcome's ``errors``, not in ``failed``).
        :param safeguards: Campaign safeguards (:class:`~airflow_provider_commpeak.hooks.commpeak.Safeguards`):
            destination countries, spend caps, an opt-out footer, smart encoding, a suppression list
            (numbers on it are reported ``SUPPRESSED``, not sent, not failures). All checked before
            anything is sent.
        :param valid_until: A timezone-aware time after which the messages are worthless (an OTP):
            no request starts after it, and every message not accepted by then, including one
            waiting out a rate limit, is reported ``EXPIRED`` (a failure). Validation still runs.
        :param max_attempts: Deprecated and ignored: refused messages are resent until the API
            accepts them or ``rate_limit_timeout`` passes without progress.
        :param rate_limit_backoff: Deprecated and ignored: refused messages are paced to the rate the
            API sustains.
        :raises CommPeakValidationError: If any message or argument is invalid (nothing is sent).
        :raises CommPeakAuthError: If the API refuses the key; ``.report`` holds what was accepted
            before, every other message being ``NOT_SENT``.
        """
        for name, value in (("max_attempts", max_attempts), ("rate_limit_backoff", rate_limit_backoff)):
            if value is not None:
                warnings.warn(
                    f"{name} is ignored since airflow-provider-commpeak 1.1.0: refused messages are resent, "
                    "paced to the rate the API sustains, until accepted or rate_limit_timeout passes without "
                    "progress",
                    DeprecationWarning,
                    stacklevel=2,
                )
        _check(int_problems(batch_size=batch_size, max_concurrency=max_concurrency, max_segments=max_segments))
        _check(valid_until_problems(valid_until))
        if report_path is not None:
            _check_report_path(messages, report_path)
        with self.stage(
            messages,
            source_format=source_format,
            default_sender=default_sender,
            default_region=default_region,
            id_namespace=id_namespace,
            max_segments=max_segments,
            allow_duplicates=allow_duplicates,
            safeguards=safeguards,
        ) as staged:
            return self._send_staged(
                staged,
                valid_until=valid_until,
                batch_size=batch_size,
                max_concurrency=max_concurrency,
                report_path=report_path,
                ledger=ledger,
                on_batch_done=on_batch_done,
            )

    def send_messages_from(self, source: Any, *, report_path: Any, **options: Any) -> SendOutcome:
        """Deprecated since 1.2.0: :meth:`send_messages` with ``report_path`` does the same."""
        warnings.warn(
            "CommPeakHook.send_messages_from() is deprecated: call send_messages(source, report_path=...)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.send_messages(source, report_path=report_path, **options)

    def _send_staged(
        self,
        staged: StagedMessages,
        *,
        valid_until: datetime | None = None,
        batch_size: int,
        max_concurrency: int,
        report_path: Any,
        ledger: SendLedger | None,
        on_batch_done: Callable[[SendOutcome], None] | None,
    ) -> SendOutcome:
        total = len(staged)
        self.log.info(
            "Sending %s message(s) (%s SMS segment(s)) to %s, %d message(s) per request, up to %d at once",
            f"{total:,}",
            f"{staged.stats.segments:,}",
            self.config.base_url,
            batch_size,
            max_concurrency,
        )
        if self.max_rate is not None:
            self.log.info(
                "At most %s message(s) a second (max_rate): %s s for every 1,000 sent",
                f"{self.max_rate:,g}",
                f"{1000 / self.max_rate:,.1f}",
            )
        if staged.stats.estimated_cost is not None:
            costs = ", ".join(f"+{code}: {cost:,.2f}" for code, cost in sorted(staged.stats.cost_by_code.items()))
            self.log.info("Estimated cost: %s (%s)", f"{staged.stats.estimated_cost:,.2f}", costs)
        if staged.duplicates:
            shown = ", ".join(f"{where} repeats {first}" for where, first in list(staged.duplicates.values())[:20])
            self.log.warning(
                "%d message(s) repeat an earlier message's number and text and are not sent (DUPLICATE): %s%s. "
                "To send them on purpose pass allow_duplicates=True",
                len(staged.duplicates),
                shown,
                ", ..." if len(staged.duplicates) > 20 else "",
            )
        stats, left_out = staged.stats, staged.left_out
        if stats.waiting and valid_until is not None and (stats.window_next_open or valid_until) >= valid_until:
            left_out = {seq: EXPIRED if code == WAITING else code for seq, code in left_out.items()}
            self.log.error(
                "%d message(s) wait for a send window that opens only after valid_until: EXPIRED", stats.waiting
            )
            stats.waiting = 0
        if stats.waiting:
            self.log.info(
                "%d message(s) wait for their recipients' send window, which next opens at %s",
                stats.waiting,
                stats.window_next_open and stats.window_next_open.isoformat(timespec="seconds"),
            )
        if staged.stats.suppressed:
            self.log.info(
                "%d message(s) to numbers on the suppression list are not sent (SUPPRESSED)", staged.stats.suppressed
            )
        sink = OutcomeSink() if report_path is None else FileSink(as_storage_path(report_path), staged.line_of)
        pipeline = SendPipeline(
            self.transport,
            self.rate_controller,
            self.retry_policy,
            batch_size=batch_size,
            max_concurrency=max_concurrency,
            rate_limit_timeout=self.rate_limit_timeout,
            log=self.log,
            clock=self._clock,
            sleep=self._sleep,
        )
        try:
            result = pipeline.run(
                staged,
                total=total,
                sink=sink,
                ledger=ledger or SendLedger(None),
                on_batch_done=on_batch_done,
                left_out=left_out,
                expires_at=self._on_clock(valid_until),
                window_closes_at=self._on_clock(stats.window_closes_at),
            )
        finally:
            sink.close()
        outcome = sink.outcome
        outcome.requests, outcome.refused, outcome.segments = result.requests, result.refused, stats.segments
        if outcome.errors.get(WAITING):
            # held back from the start: when their window opens; cut off by a closing window: from then
            resumes = [at for at in (stats.window_next_open, stats.window_closes_at if result.expired else None) if at]
            outcome.resume_at = min(resumes).isoformat() if resumes else None
        if result.error is not None:
            raise result.error
        if result.settled != total:
            raise CommPeakError(
                f"Internal error: {result.settled} result(s) for {total} message(s); the report is incomplete "
                "(please report this). Messages with no result may or may not have been sent."
            )
        stop = result.stopped_by
        if stop is not None and stop.outcome is Outcome.AUTH:
            # refused from the start: the key is wrong, fail without retries; refused after accepting
            # messages (revoked mid-campaign, an edge's hiccup): a retry may go on where it stopped
            kind = CommPeakKeyRefusedError if outcome.accepted == 0 else CommPeakAuthError
            error = kind(
                f"CommPeak refused the API key of connection {self.commpeak_conn_id!r} ({stop.description})",
                http_status=stop.status_code,
            )
            error.report = outcome
            raise error
        return outcome

    def _on_clock(self, moment: datetime | None) -> float | None:
        """A wall-clock moment on the hook's monotonic clock (what the pipeline paces by)."""
        return None if moment is None else self._clock() + (moment - wall_clock.utcnow()).total_seconds()

    # -- statuses ----------------------------------------------------------------------------------

    def _statuses_from(self, answer: Answer, chunk: list[str]) -> dict[str, str]:
        if answer.outcome is Outcome.AUTH:
            raise CommPeakKeyRefusedError(
                f"CommPeak refused the API key of connection {self.commpeak_conn_id!r} ({answer.description})",
                http_status=answer.status_code,
            )
        if answer.outcome is not Outcome.OK:
            raise CommPeakApiError(answer.description, http_status=answer.status_code, detail=answer.detail)
        read = read_statuses(answer.body, chunk)
        if read.unreadable:
            self.log.warning(
                "%d entr(ies) of a messages_status answer could not be read; their messages stay '%s'",
                read.unreadable,
                UNKNOWN,
            )
        for status in sorted(read.unfamiliar - self._warned_statuses):
            self._warned_statuses.add(status)
            self.log.warning(
                "CommPeak answered a status it is not known to use, %r: such messages stay pending unless "
                "the sensor's success_statuses or failure_statuses lists it",
                status,
            )
        return {uuid: read.statuses.get(uuid, UNKNOWN) for uuid in chunk}

    def get_statuses(self, message_uuids: Iterable[str], *, batch_size: int = 500) -> dict[str, str]:
        """
        Return ``{uuid: status}`` (lower case; ``unknown`` when the API does not name it).

        One ``POST /messages_status/`` per chunk of ``batch_size`` uuids, one at a time. Reads are
        idempotent, so timeouts and 5xx are retried too. A 429/503 is retried and paces every later
        status request of this hook (see :attr:`status_pacer`): a long poll slows to the rate the
        API serves instead of paying a backoff per request.

        :raises CommPeakAuthError: If the API refuses the key.
        :raises CommPeakApiError: If the API keeps failing or answers a body it cannot read.
        """
        _check(int_problem("batch_size", batch_size, bound="status_batch_size"))
        statuses: dict[str, str] = {}
        for chunk in chunked(message_uuids, batch_size):
            answer = self.transport.request(
                STATUS_PATH, {"message_uuids": chunk}, retry_unknown=True, pacer=self.status_pacer
            )
            statuses.update(self._statuses_from(answer, chunk))
        return statuses

    async def _aget_transport(self) -> AsyncTransport:
        """The async client, built from the connection read without blocking the event loop."""
        if self._async_transport is None:
            conn = await aget_connection(self.commpeak_conn_id)
            extra = await aget_extra(conn)
            config = self._config_from(conn.host, conn.port, conn.password, extra)
            self._async_transport = AsyncTransport(config, self.retry_policy)
        return self._async_transport

    async def aget_statuses(self, message_uuids: Iterable[str], *, batch_size: int = 500) -> dict[str, str]:
        """
        The async twin of :meth:`get_statuses` (for triggers): the same classifier and retry policy.

        Reads the connection without blocking the event loop. Call :meth:`aclose` when done.
        """
        _check(int_problem("batch_size", batch_size, bound="status_batch_size"))
        transport = await self._aget_transport()
        statuses: dict[str, str] = {}
        for chunk in chunked(message_uuids, batch_size):
            answer = await transport.request(STATUS_PATH, {"message_uuids": chunk}, pacer=self.status_pacer)
            statuses.update(self._statuses_from(answer, chunk))
        return statuses

    def test_connection(self) -> tuple[bool, str]:
        """
        Prove the key with one status query for a uuid no message has: no SMS is sent.

        One try, at most :data:`TEST_CONNECTION_TIMEOUT` seconds, no retries: the UI and CLI wait
        for it. The messages name no connection id (the UI tests under a temporary one).
        """
        try:
            config = self.config
        except CommPeakError as exc:
            return False, str(exc).replace(f"Connection {self.commpeak_conn_id!r}", "The connection")
        transport = SyncTransport(
            config.with_timeout(min(config.timeout, TEST_CONNECTION_TIMEOUT)), RetryPolicy(max_retries=0)
        )
        try:
            answer = transport.request(STATUS_PATH, {"message_uuids": [PROBE_UUID]}, retry_unknown=False)
        finally:
            transport.close()
        if answer.outcome is Outcome.OK:
            return True, f"Connected to {config.base_url}: the API key was accepted"
        if answer.outcome is Outcome.AUTH:
            return False, f"CommPeak refused the API key (HTTP {answer.status_code}: not authenticated)"
        return False, f"Could not prove the key at {config.base_url}: {answer.description}"


def _check_report_path(source: Any, report_path: Any) -> None:
    """Refuse a report path that would overwrite the audience, or any file that is not a report."""
    report = as_storage_path(report_path)
    if is_file_source(source) and same_location(as_storage_path(source), report):
        raise CommPeakValidationError(
            ["report_path is the messages file itself: writing the report would destroy the audience"],
            what="arguments",
        )
    if path_exists(report) and not is_report_file(report):
        raise CommPeakValidationError(
            ["report_path names an existing file that is not a CommPeak report; refusing to overwrite it"],
            what="arguments",
        )


def _mask_secret(secret: str) -> None:
    """Register the key with Airflow's secrets masker so no log line shows it."""
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret(secret)
