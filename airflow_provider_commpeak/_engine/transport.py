"""
The HTTP clients: a sync one (``requests``, for sends and status reads in a worker) and an async one
(``httpx``, for status reads in the triggerer). Both put one deadline on each request, never follow
a redirect, classify every answer with :mod:`~airflow_provider_commpeak._engine.classify` and retry
with the same :class:`~airflow_provider_commpeak._engine.retry.RetryPolicy`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_commpeak._engine.classify import (
    MAX_ANSWER_BYTES,
    Answer,
    Failure,
    Outcome,
    classify_failure,
    classify_response,
    classify_too_large,
)
from airflow_provider_commpeak._engine.connection import CommPeakConnectionConfig
from airflow_provider_commpeak._engine.retry import RetryPolicy

if TYPE_CHECKING:
    import httpx
    import requests

    from airflow_provider_commpeak._engine.poll_pacer import PollPacer

log = logging.getLogger(__name__)


def requests_failure(exc: BaseException) -> Failure:
    """What a ``requests`` exception says about where the request failed."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

    errors = requests.exceptions
    if isinstance(exc, (errors.InvalidHeader, errors.InvalidURL, errors.InvalidSchema, errors.MissingSchema)):
        return Failure.INVALID_REQUEST
    if isinstance(exc, (ValueError, UnicodeError)):
        return Failure.INVALID_REQUEST
    if isinstance(exc, errors.ProxyError):
        return Failure.PROXY
    if isinstance(exc, errors.SSLError):
        return Failure.TLS
    if isinstance(exc, errors.ConnectTimeout):
        return Failure.CONNECT
    if isinstance(exc, errors.Timeout):
        return Failure.TIMEOUT
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
        return Failure.CONNECT
    return Failure.BROKEN


def httpx_failure(exc: BaseException) -> Failure:
    """What an ``httpx`` exception says about where the request failed."""
    import httpx

    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)):
        return Failure.INVALID_REQUEST
    if isinstance(exc, (ValueError, UnicodeError)):
        return Failure.INVALID_REQUEST
    if isinstance(exc, httpx.ProxyError):
        return Failure.PROXY
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        return Failure.CONNECT
    if isinstance(exc, httpx.TimeoutException):
        return Failure.TIMEOUT
    return Failure.BROKEN


class _BoundedBody:
    """An answer's chunks, up to :data:`MAX_ANSWER_BYTES`; ``over`` once past it (the rest is left unread)."""

    def __init__(self, headers: Any) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        try:
            self.over = int(headers.get("Content-Length") or 0) > MAX_ANSWER_BYTES
        except ValueError:
            self.over = False

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; ``False`` once the bound is passed (stop reading)."""
        self.size += len(chunk)
        self.over = self.size > MAX_ANSWER_BYTES
        if not self.over:
            self.chunks.append(chunk)
        return not self.over

    def content(self) -> bytes | None:
        return None if self.over else b"".join(self.chunks)


def encode_body(payload: dict[str, Any]) -> bytes:
    """A request's JSON body as it goes on the wire (raises ``ValueError`` for what UTF-8 cannot carry)."""
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _should_retry(answer: Answer, *, retry_unknown: bool) -> bool:
    if answer.outcome is Outcome.NOT_PROCESSED and answer.retryable:
        return answer.status_code is None  # connection failures (nothing sent) are always retried
    return retry_unknown and answer.outcome is Outcome.UNKNOWN


def _retry_delay(policy: RetryPolicy, attempt: int, answer: Answer, *, retry_unknown: bool) -> float | None:
    """Seconds to wait before retry number ``attempt`` (logged), or ``None`` to return ``answer``."""
    if attempt > policy.max_retries or not _should_retry(answer, retry_unknown=retry_unknown):
        return None
    delay = policy.delay(attempt, answer.retry_after)
    log.warning("CommPeak API: %s; retry %d/%d in %.2fs", answer.description, attempt, policy.max_retries, delay)
    return delay


class SyncTransport:
    """
    The hook's HTTP client: one pooled ``requests.Session``, one deadline per request, no redirects.

    :param config: The connection.
    :param policy: How often and how long to retry.
    :param sleep: Waits between retries; returns early (``True``) when the send is being stopped.
    """

    def __init__(
        self,
        config: CommPeakConnectionConfig,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], bool | None] = time.sleep,
    ) -> None:
        self.config = config
        self.policy = policy
        self._sleep = sleep

    @cached_property
    def session(self) -> requests.Session:
        """One pooled session carrying the ``Authorization`` header; env proxy/CA settings read once."""
        import requests

        from airflow_provider_commpeak._engine.deadline import DeadlineAdapter

        session = requests.Session()
        session.headers.update(self.config.headers())
        settings = session.merge_environment_settings(self.config.base_url, {}, None, None, None)
        session.proxies, session.verify = settings["proxies"], settings["verify"]
        session.trust_env = False
        adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=32, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def close(self) -> None:
        if "session" in self.__dict__:
            self.__dict__.pop("session").close()

    def request(
        self,
        path: str,
        payload: dict[str, Any] | bytes,
        *,
        retry_unknown: bool,
        pacer: PollPacer | None = None,
        stop: threading.Event | None = None,
    ) -> Answer:
        """
        POST ``payload`` to ``path``; retry per the policy; return the last answer, classified.

        Connection failures (nothing sent) are always retried; unknown outcomes (timeouts, 5xx) only
        when ``retry_unknown`` (a status read, which is safe to repeat; never a send); 429/503 only
        with a ``pacer``, which also spaces every try once the API pushed back.

        :param payload: The JSON body, or its bytes from :func:`encode_body`.
        :param pacer: Paces the tries and says when a pushed-back one goes again (status reads).
        :param stop: When set, stop waiting between retries and return the last answer.
        """
        body = payload if isinstance(payload, bytes) else encode_body(payload)
        attempt = 0
        while True:
            while pacer is not None and (wait := pacer.wait()) > 0:
                self._sleep(wait)  # until the pacer's next slot, then ask for it
            sent_at = pacer.now() if pacer is not None else 0.0
            answer = self._once(path, body)
            attempt += 1
            if pacer is not None and pacer.answered(answer, sent_at=sent_at, attempt=attempt):
                continue
            delay = _retry_delay(self.policy, attempt, answer, retry_unknown=retry_unknown)
            if delay is None:
                return answer
            if stop is not None and stop.wait(delay):
                return answer
            if stop is None:
                self._sleep(delay)

    def _once(self, path: str, body: bytes) -> Answer:
        import requests

        from airflow_provider_commpeak._engine.deadline import request_deadline

        with request_deadline(self.config.timeout) as trace:
            try:
                response = self.session.post(
                    self.config.url(path),
                    data=body,
                    timeout=(self.config.connect_timeout, self.config.timeout),
                    allow_redirects=False,
                    stream=True,
                )
                with response:
                    content = self._read_bounded(response)
            except (requests.RequestException, ValueError, UnicodeError) as exc:
                failure = Failure.DEADLINE if trace.expired else requests_failure(exc)
                return classify_failure(failure, bytes_sent=trace.bytes_sent, path=path)
        if content is None:
            return classify_too_large(response.status_code, path=path)
        return classify_response(response.status_code, response.headers, content, path=path)

    @staticmethod
    def _read_bounded(response: requests.Response) -> bytes | None:
        """The body, or ``None`` (unread past the bound) when it is larger than :data:`MAX_ANSWER_BYTES`."""
        body = _BoundedBody(response.headers)
        if not body.over:
            for chunk in response.iter_content(chunk_size=65536):
                if not body.add(chunk):
                    break
        return body.content()


class AsyncTransport:
    """The async twin for status reads in the triggerer: ``httpx``, the same deadline and policy."""

    def __init__(self, config: CommPeakConnectionConfig, policy: RetryPolicy) -> None:
        self.config = config
        self.policy = policy
        self._client: httpx.AsyncClient | None = None

    def _get_client(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            self._client = httpx.AsyncClient(
                headers=self.config.headers(),
                timeout=httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout),
                follow_redirects=False,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def request(
        self, path: str, payload: dict[str, Any], *, retry_unknown: bool = True, pacer: PollPacer | None = None
    ) -> Answer:
        """As :meth:`SyncTransport.request`, awaiting instead of blocking."""
        body = encode_body(payload)
        attempt = 0
        while True:
            while pacer is not None and (wait := pacer.wait()) > 0:
                await asyncio.sleep(wait)  # until the pacer's next slot, then ask for it
            sent_at = pacer.now() if pacer is not None else 0.0
            answer = await self._once(path, body)
            attempt += 1
            if pacer is not None and pacer.answered(answer, sent_at=sent_at, attempt=attempt):
                continue
            delay = _retry_delay(self.policy, attempt, answer, retry_unknown=retry_unknown)
            if delay is None:
                return answer
            await asyncio.sleep(delay)

    async def _once(self, path: str, body: bytes) -> Answer:
        import httpx

        client = self._get_client()

        async def exchange() -> tuple[httpx.Response, bytes | None]:
            async with client.stream("POST", self.config.url(path), content=body) as response:
                return response, await self._read_bounded(response)

        try:  # one deadline for connecting and the whole answer (asyncio.wait_for: Python 3.10 too)
            response, content = await asyncio.wait_for(exchange(), self.config.timeout)
        except TimeoutError:
            return classify_failure(Failure.DEADLINE, bytes_sent=None, path=path)
        except (httpx.HTTPError, ValueError, UnicodeError) as exc:
            return classify_failure(httpx_failure(exc), bytes_sent=None, path=path)
        if content is None:
            return classify_too_large(response.status_code, path=path)
        return classify_response(response.status_code, response.headers, content, path=path)

    @staticmethod
    async def _read_bounded(response: httpx.Response) -> bytes | None:
        body = _BoundedBody(response.headers)
        if not body.over:
            async for chunk in response.aiter_bytes(65536):
                if not body.add(chunk):
                    break
        return body.content()
