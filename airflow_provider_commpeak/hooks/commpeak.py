"""The hook for CommPeak's SMS Streams API: sending SMS in batches and reading delivery statuses."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_commpeak.exceptions import CommPeakApiError, CommPeakAuthError, CommPeakError
from airflow_provider_commpeak.hooks.backoff import backoff_delay, parse_retry_after
from airflow_provider_commpeak.hooks.batching import chunked, run_in_order
from airflow_provider_commpeak.hooks.connection import (
    SEND_PATH,
    STATUS_PATH,
    CommPeakConnectionConfig,
)
from airflow_provider_commpeak.hooks.pacing import AdaptivePacer
from airflow_provider_commpeak.hooks.report import (
    NOT_ACCEPTED,
    NOT_SENT,
    RATE_LIMIT,
    UNCONFIRMED,
    ReportWriter,
    SendReport,
    SendSummary,
)
from airflow_provider_commpeak.hooks.status_parser import excerpt, parse_statuses
from airflow_provider_commpeak.utils.segments import count_segments
from airflow_provider_commpeak.utils.validation import validate_messages

if TYPE_CHECKING:
    import requests

#: HTTP statuses that prove the request was not processed: safe to resend.
NOT_PROCESSED_STATUSES = frozenset({429, 503})
#: HTTP statuses after which a send's outcome is unknown: never resent automatically.
OUTCOME_UNKNOWN_STATUSES = frozenset({500, 502, 504})
#: A uuid no message has, to prove the key on ``messages_status`` without sending an SMS.
PROBE_UUID = "00000000-0000-0000-0000-000000000000"


class RequestNotProcessed(CommPeakApiError):
    """The request surely was not processed (connect error, 429, 503) and retries ran out."""

    def __init__(self, message: str, *, reason: str, status_code: int | None = None, detail: Any = None):
        super().__init__(message, status_code=status_code, detail=detail)
        #: Short code used as the messages' error, e.g. ``HTTP_503`` or ``CONNECTION_ERROR``.
        self.reason = reason


class OutcomeUnknown(CommPeakApiError):
    """The request went out but no readable answer came back (read timeout, reset, 500/502/504)."""


def _is_connect_failure(exc: Exception) -> bool:
    """Whether a ``requests`` error happened before the request reached the server."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


#: The keys of a FastAPI validation error worth keeping; ``input`` and ``ctx`` may echo the
#: request's phone numbers and texts back.
_SAFE_ERROR_KEYS = ("loc", "msg", "type")


def _detail(response: requests.Response) -> Any:
    """The ``detail`` of a FastAPI-style error body (without echoed input), else a short excerpt."""
    try:
        body = response.json()
    except ValueError:
        return excerpt(response.text)
    if not isinstance(body, dict) or "detail" not in body:
        return excerpt(body)
    detail = body["detail"]
    if isinstance(detail, list):
        return [
            {k: v for k, v in item.items() if k in _SAFE_ERROR_KEYS} if isinstance(item, dict) else item
            for item in detail
        ]
    return detail


def _check_send_options(batch_size: int, max_attempts: int, max_concurrency: int) -> None:
    if batch_size < 1 or max_attempts < 1 or max_concurrency < 1:
        raise ValueError("batch_size, max_attempts and max_concurrency must be at least 1")


class CommPeakHook(BaseHook):
    """
    Interact with CommPeak's SMS Streams API.

    One pooled ``requests.Session`` per hook, a timeout on every request, and retries with
    exponential backoff and jitter (honouring ``Retry-After``) only where the request surely was not
    processed: connection failures, 429 and 503. A send whose outcome is unknown (read timeout,
    reset, 500/502/504 after the body went out) is never resent: its messages are reported
    ``UNCONFIRMED``.

    :param commpeak_conn_id: The :ref:`CommPeak connection <howto/connection:commpeak>`: API key in the
        password, base URL in the host (default ``https://sendsms.commpeak.com``).
    :param timeout: Seconds to wait for each answer; overrides the connection's ``timeout`` extra
        (default 30).
    :param max_retries: How often a request that was surely not processed is retried.
    :param backoff_base: Seconds before the first retry; doubles each time, with jitter.
    :param backoff_max: The longest wait between two tries, ``Retry-After`` included.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.commpeak_conn_id = commpeak_conn_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max

    # -- connection --------------------------------------------------------------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Return custom field behaviour (Airflow < 3.2; newer versions read provider info)."""
        from airflow_provider_commpeak.get_provider_info import UI_FIELD_BEHAVIOUR

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
                validators=[Optional(), NumberRange(min=1)],
                description="Optional. Seconds to wait for each answer (default 30).",
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
        conn = self.get_connection(self.commpeak_conn_id)
        config = CommPeakConnectionConfig.from_fields(
            conn_id=self.commpeak_conn_id,
            host=conn.host,
            port=conn.port,
            password=conn.password,
            extra=conn.extra_dejson,
            timeout=self.timeout,
        )
        _mask_secret(config.api_key)
        return config

    @cached_property
    def session(self) -> requests.Session:
        """The hook's one pooled session, carrying the ``Authorization`` header."""
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        session.headers.update(self.config.headers())
        # Read proxy and CA-bundle settings from the environment once, not on every request.
        settings = session.merge_environment_settings(self.config.base_url, {}, None, None, None)
        session.proxies, session.verify = settings["proxies"], settings["verify"]
        session.trust_env = False
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=32, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def get_conn(self) -> requests.Session:
        """Return the hook's pooled ``requests.Session``."""
        return self.session

    def close(self) -> None:
        """Close the pooled session (the hook opens a new one if used again)."""
        if "session" in self.__dict__:
            self.__dict__.pop("session").close()

    def __enter__(self) -> CommPeakHook:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- one request -------------------------------------------------------------------------------

    def _sleep_before_retry(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = parse_retry_after(retry_after, cap=self.backoff_max)
        if delay is None:
            delay = backoff_delay(attempt, base=self.backoff_base, cap=self.backoff_max)
        self.log.warning("CommPeak API: %s; retry %d/%d in %.2fs", why, attempt, self.max_retries, delay)
        time.sleep(delay)

    def _post(self, path: str, payload: dict[str, Any], *, idempotent: bool) -> Any:
        """
        POST ``payload`` and return the decoded JSON body.

        Retries connection failures, 429 and 503 (and, when ``idempotent``, read timeouts, resets and
        500/502/504 too) up to ``max_retries`` times.

        :raises CommPeakAuthError: On 401/403, never retried.
        :raises RequestNotProcessed: When retries ran out on errors that prove nothing was processed.
        :raises OutcomeUnknown: When a non-idempotent request may have been processed.
        :raises CommPeakApiError: On any other HTTP error or an unreadable body.
        """
        import requests

        url = self.config.url(path)
        timeout = (self.config.connect_timeout, self.config.timeout)
        attempt = 0
        while True:
            try:
                response = self.session.post(url, json=payload, timeout=timeout)
            except requests.exceptions.RequestException as exc:
                failure = type(exc).__name__
                if _is_connect_failure(exc):
                    if attempt < self.max_retries:
                        attempt += 1
                        self._sleep_before_retry(attempt, None, f"{failure} connecting to {path}")
                        continue
                    raise RequestNotProcessed(
                        f"Could not connect to {self.config.base_url} ({failure}) after {attempt + 1} tries",
                        reason="CONNECTION_ERROR",
                    ) from None
                if idempotent and attempt < self.max_retries:
                    attempt += 1
                    self._sleep_before_retry(attempt, None, f"{failure} on {path}")
                    continue
                raise OutcomeUnknown(f"No answer from {path} ({failure}); the outcome is unknown") from None

            code = response.status_code
            if code in (401, 403):
                raise CommPeakAuthError(
                    f"CommPeak refused the API key of connection {self.commpeak_conn_id!r} "
                    f"(HTTP {code}: {excerpt(_detail(response))})",
                    status_code=code,
                    detail=_detail(response),
                )
            retryable = code in NOT_PROCESSED_STATUSES or (idempotent and code in OUTCOME_UNKNOWN_STATUSES)
            if retryable and attempt < self.max_retries:
                attempt += 1
                self._sleep_before_retry(
                    attempt, response.headers.get("Retry-After"), f"HTTP {code} on {path}"
                )
                continue
            if code in NOT_PROCESSED_STATUSES:
                raise RequestNotProcessed(
                    f"HTTP {code} from {path} after {attempt + 1} tries",
                    reason=f"HTTP_{code}",
                    status_code=code,
                    detail=_detail(response),
                )
            if code in OUTCOME_UNKNOWN_STATUSES:
                raise OutcomeUnknown(
                    f"HTTP {code} from {path}; the outcome is unknown",
                    status_code=code,
                    detail=_detail(response),
                )
            if code >= 400:
                raise CommPeakApiError(
                    f"HTTP {code} from {path}: {excerpt(_detail(response))}",
                    status_code=code,
                    detail=_detail(response),
                )
            try:
                return response.json()
            except ValueError:
                raise OutcomeUnknown(
                    f"HTTP {code} from {path} with a body that is not JSON: {excerpt(response.text)}",
                    status_code=code,
                    detail=excerpt(response.text),
                ) from None

    # -- sending -----------------------------------------------------------------------------------

    def send_messages(
        self,
        messages: Iterable[dict[str, Any]],
        *,
        batch_size: int = 100,
        max_attempts: int = 8,
        rate_limit_backoff: float = 1.0,
        max_concurrency: int = 4,
        default_sender: str | None = None,
        on_batch_done: Callable[[SendReport], None] | None = None,
        validate: bool = True,
    ) -> SendReport:
        """
        Validate ``messages``, then send them in batches, one ``POST /simple_send/`` per batch.

        Messages the API refused with ``RATE_LIMIT`` or left out of its answer are resent (only
        those, with backoff) until accepted or ``max_attempts`` is reached. Nothing is sent if any
        message is invalid.

        :param messages: Mappings of ``internal_id``, ``sender``, ``recipient_phone``,
            ``message_content``; ``internal_id`` must be unique.
        :param batch_size: At most this many messages per request.
        :param max_attempts: How often one message is offered before it is given up as
            ``RATE_LIMIT``/``NOT_ACCEPTED``.
        :param rate_limit_backoff: Seconds before the first resend of rate-limited messages;
            doubles each time, with jitter, up to ``backoff_max``.
        :param max_concurrency: How many batch requests are in flight at once.
        :param default_sender: The sender of messages that name none.
        :param on_batch_done: Called with each batch's report as soon as it is known, in input
            order, from the calling thread (e.g. to record progress durably).
        :param validate: Check the messages first; pass ``False`` only for messages that
            :func:`~airflow_provider_commpeak.utils.validation.validate_messages` already returned.
        :raises CommPeakValidationError: If any message is invalid (nothing is sent).
        :raises CommPeakAuthError: If the API refuses the key; its ``report`` holds what was accepted
            before, every other message being ``NOT_SENT``.
        """
        _check_send_options(batch_size, max_attempts, max_concurrency)
        checked = validate_messages(messages, default_sender=default_sender) if validate else list(messages)
        report = SendReport()

        def collect(batch_report: SendReport) -> None:
            report.merge(batch_report)
            if on_batch_done is not None:
                on_batch_done(batch_report)

        error = self.send_batches(
            chunked(checked, batch_size),
            total=len(checked),
            max_attempts=max_attempts,
            rate_limit_backoff=rate_limit_backoff,
            max_concurrency=max_concurrency,
            on_batch_done=collect,
        )
        if error is not None:
            error.report = report
            raise error
        self.log.info(
            "Sent: %d accepted, %d failed %s", report.accepted, report.failed, report.describe_errors()
        )
        return report

    def send_messages_from(
        self,
        source: Any,
        *,
        report_path: Any,
        source_format: str | None = None,
        batch_size: int = 100,
        max_attempts: int = 8,
        rate_limit_backoff: float = 1.0,
        max_concurrency: int = 4,
        default_sender: str | None = None,
        make_internal_id: Callable[[int], str] | None = None,
        settled: Mapping[str, dict[str, str | None]] | None = None,
        on_batch_done: Callable[[SendReport], None] | None = None,
    ) -> SendSummary:
        """
        Send messages from a file (or a list) in constant memory, writing each result to a file.

        The source is read once to validate every message (nothing is sent if any is invalid), then
        again to send, batch by batch; memory does not grow with the number of messages.

        :param source: A CSV or JSON Lines file (a local path or any ObjectStoragePath), or a list
            of message mappings.
        :param report_path: Where to write one ``internal_id, message_uuid, error`` line per
            message: ``.csv`` or ``.jsonl``, local or ObjectStoragePath.
        :param source_format: ``csv`` or ``jsonl`` when the file's suffix does not say.
        :param make_internal_id: Builds the ``internal_id`` of a message that has none, from its
            position.
        :param settled: Results of messages an earlier try settled: written to the report as they
            are, not sent again.
        :param on_batch_done: Called with each batch's report as soon as it is known.
        :raises CommPeakValidationError: If any message is invalid (nothing is sent).
        :raises CommPeakAuthError: If the API refuses the key; its ``report`` is the summary so far.

        Other parameters as for :meth:`send_messages`.
        """
        from airflow_provider_commpeak.utils.sources import read_records
        from airflow_provider_commpeak.utils.validation import check_message, scan_messages

        _check_send_options(batch_size, max_attempts, max_concurrency)

        def records() -> Iterable[Any]:
            """A fresh pass over the source (it is read twice: to validate, then to send)."""
            if isinstance(source, (list, tuple)):
                return iter(source)
            return read_records(source, source_format)

        options = {"default_sender": default_sender, "make_internal_id": make_internal_id}
        total = scan_messages(records, **options)
        settled = settled or {}
        summary = SendSummary(report_path=str(report_path), messages=total)

        with ReportWriter(report_path) as writer:

            def collect(batch_report: SendReport) -> None:
                writer.write(batch_report)
                summary.add(batch_report)
                if on_batch_done is not None:
                    on_batch_done(batch_report)

            def unsettled() -> Iterator[dict[str, str]]:
                for position, record in enumerate(records()):
                    message = check_message(position, record, problems=[], **options)
                    if message is None:
                        raise CommPeakError(f"message {position} changed between validation and sending")
                    earlier = settled.get(message["internal_id"])
                    if earlier is None:
                        yield message
                        continue
                    kept = SendReport()
                    kept.record(message["internal_id"], earlier["message_uuid"], earlier["error"])
                    writer.write(kept)
                    summary.add(kept)

            error = self.send_batches(
                chunked(unsettled(), batch_size),
                total=total - len(settled),
                max_attempts=max_attempts,
                rate_limit_backoff=rate_limit_backoff,
                max_concurrency=max_concurrency,
                on_batch_done=collect,
            )
        if error is not None:
            error.report = summary
            raise error
        self.log.info(
            "Sent: %d accepted, %d failed %s; results in %s",
            summary.accepted,
            summary.failed,
            summary.describe_errors(),
            summary.report_path,
        )
        return summary

    def send_batches(
        self,
        batches: Iterable[list[dict[str, str]]],
        *,
        total: int,
        max_attempts: int,
        rate_limit_backoff: float,
        max_concurrency: int,
        on_batch_done: Callable[[SendReport], None],
    ) -> CommPeakAuthError | None:
        """
        Send already validated batches, streaming; hand each batch's report to ``on_batch_done``.

        Returns the auth error that stopped the send, if any (batches after it come back ``NOT_SENT``).
        """
        self.log.info(
            "Sending %d message(s) to %s, %d request(s) at once", total, self.config.base_url, max_concurrency
        )
        pacer = AdaptivePacer()

        def send(batch: list[dict[str, str]]) -> tuple[SendReport, CommPeakAuthError | None]:
            return self._send_batch(
                batch, max_attempts=max_attempts, rate_limit_backoff=rate_limit_backoff, pacer=pacer
            )

        auth_error: CommPeakAuthError | None = None
        done = 0
        for batch_report, error in run_in_order(batches, send, max_concurrency):
            auth_error = auth_error or error
            done += len(batch_report.results)
            self.log.info(
                "Batch of %d message(s), %d SMS segment(s): %d accepted, %d failed (%d/%d done)",
                len(batch_report.results),
                batch_report.segments,
                batch_report.accepted,
                batch_report.failed,
                done,
                total,
            )
            on_batch_done(batch_report)
        return auth_error

    def _send_batch(
        self,
        batch: list[dict[str, str]],
        *,
        max_attempts: int,
        rate_limit_backoff: float,
        pacer: AdaptivePacer,
    ) -> tuple[SendReport, CommPeakAuthError | None]:
        """
        Send one batch, resending its rate-limited and missing messages; never raise for the API.

        Once the API rate-limits, ``pacer`` spaces every send thread's requests at the measured
        rate, so resends go out as soon as the API has room again; before a rate is known (or if
        nothing gets accepted) resends wait an exponential backoff.
        """
        report = SendReport(segments=sum(count_segments(m["message_content"]).segments for m in batch))
        pending = {message["internal_id"]: message for message in batch}
        last_error: dict[str, str] = {}
        for attempt in range(1, max_attempts + 1):
            pacer.acquire(len(pending))
            accepted_now = 0
            try:
                body = self._post(SEND_PATH, {"messages": list(pending.values())}, idempotent=False)
            except CommPeakAuthError as exc:
                for internal_id in pending:
                    report.record(internal_id, None, NOT_SENT)
                return report, exc
            except RequestNotProcessed as exc:
                self.log.error("Batch not sent: %s", exc)
                return self._finish(report, pending, exc.reason), None
            except OutcomeUnknown as exc:
                self.log.error(
                    "%s: %d message(s) are UNCONFIRMED and will not be resent automatically",
                    exc,
                    len(pending),
                )
                return self._finish(report, pending, UNCONFIRMED), None
            except CommPeakApiError as exc:
                self.log.error("Batch refused: %s", exc)
                return self._finish(report, pending, f"HTTP_{exc.status_code}"), None

            entries = body.get("messages") if isinstance(body, dict) else None
            if not isinstance(entries, list):
                self.log.error(
                    "Unreadable answer from %s (%s); %d message(s) are UNCONFIRMED",
                    SEND_PATH,
                    excerpt(body),
                    len(pending),
                )
                return self._finish(report, pending, UNCONFIRMED), None
            if isinstance(body.get("task_id"), str) and body["task_id"] not in report.task_ids:
                report.task_ids.append(body["task_id"])
            for entry in entries:
                internal_id = str(entry.get("internal_id")) if isinstance(entry, dict) else None
                if internal_id not in pending:
                    continue
                error, message_uuid = entry.get("error"), entry.get("message_uuid")
                if error is None and message_uuid:
                    report.record(internal_id, str(message_uuid), None)
                    del pending[internal_id]
                    accepted_now += 1
                elif error == RATE_LIMIT:
                    last_error[internal_id] = RATE_LIMIT
                else:
                    report.record(internal_id, None, str(error or NOT_ACCEPTED))
                    del pending[internal_id]
            paced = pacer.record(accepted=accepted_now, rate_limited=bool(pending))
            if not pending:
                break
            if attempt < max_attempts:
                if paced:
                    self.log.warning(
                        "%d message(s) rate-limited or not in the answer; resending only those, paced at "
                        "%.0f msg/s (attempt %d/%d)",
                        len(pending),
                        pacer.rate,
                        attempt + 1,
                        max_attempts,
                    )
                    continue
                delay = backoff_delay(attempt, base=rate_limit_backoff, cap=self.backoff_max)
                self.log.warning(
                    "%d message(s) rate-limited or not in the answer; resending only those in %.2fs "
                    "(attempt %d/%d)",
                    len(pending),
                    delay,
                    attempt + 1,
                    max_attempts,
                )
                time.sleep(delay)
        for internal_id in pending:
            report.record(internal_id, None, last_error.get(internal_id, NOT_ACCEPTED))
        return report, None

    @staticmethod
    def _finish(report: SendReport, pending: dict[str, Any], error: str) -> SendReport:
        for internal_id in pending:
            report.record(internal_id, None, error)
        return report

    # -- statuses ----------------------------------------------------------------------------------

    def get_statuses(self, message_uuids: Iterable[str], *, batch_size: int = 500) -> dict[str, str]:
        """
        Return ``{uuid: status}`` (lower case; ``unknown`` when the API does not name it).

        One ``POST /messages_status/`` per chunk of ``batch_size`` uuids. Reads are idempotent, so
        timeouts and 5xx are retried too.

        :raises CommPeakAuthError: If the API refuses the key.
        :raises CommPeakApiError: If the API keeps failing or answers a body it cannot read.
        """
        statuses: dict[str, str] = {}
        for chunk in chunked(message_uuids, batch_size):
            body = self._post(STATUS_PATH, {"message_uuids": chunk}, idempotent=True)
            statuses.update(parse_statuses(body, chunk))
        return statuses

    def test_connection(self) -> tuple[bool, str]:
        """Prove the key with a status query for a uuid no message has: no SMS is sent."""
        try:
            self._post(STATUS_PATH, {"message_uuids": [PROBE_UUID]}, idempotent=True)
        except CommPeakAuthError:
            return False, "CommPeak refused the API key (HTTP 403 Not authenticated)"
        except CommPeakError as exc:
            return False, str(exc)
        return True, f"Connected to {self.config.base_url}: the API key was accepted"


def _mask_secret(secret: str) -> None:
    """Register the key with Airflow's secrets masker so no log line shows it."""
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret(secret)
