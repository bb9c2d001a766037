"""What reached the server, decided on real sockets (127.0.0.1): deadlines, TLS, proxies, redirects."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from airflow_provider_commpeak._engine.classify import Outcome
from airflow_provider_commpeak._engine.connection import CommPeakConnectionConfig
from airflow_provider_commpeak._engine.retry import RetryPolicy
from airflow_provider_commpeak._engine.transport import SyncTransport
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.sandbox import CommPeakSandbox
from helpers import free_port, message
from helpers.tls import https_sandbox

pytestmark = pytest.mark.sandbox

BODY = {"messages": [message(0)]}


def transport(url: str, *, key: str = "sandbox-key", timeout: float = 5.0, retries: int = 0) -> SyncTransport:
    config = CommPeakConnectionConfig(conn_id="c", base_url=url, api_key=key, timeout=timeout)
    return SyncTransport(config, RetryPolicy(max_retries=retries, backoff_base=0.01, backoff_max=0.05))


def connect(monkeypatch: pytest.MonkeyPatch, url: str, **extra) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_COMMPEAK_DEFAULT",
        json.dumps({"conn_type": "commpeak", "password": "sandbox-key", "host": url, "extra": extra}),
    )


def test_a_server_trickling_its_answer_is_cut_at_the_deadline():
    with CommPeakSandbox() as sb:
        sb.inject("trickle", interval=0.2, seconds=60)
        started = time.monotonic()
        answer = transport(sb.url, timeout=1.0).request("/simple_send/", BODY, retry_unknown=False)
        elapsed = time.monotonic() - started
        assert answer.outcome is Outcome.UNKNOWN
        assert answer.code == "DEADLINE_EXCEEDED"
        assert elapsed < 15, "the deadline did not cut a trickling answer"  # the trickle lasts 60 s
        assert len(sb.accepted) == 1


def test_a_server_that_never_answers_is_cut_at_the_deadline():
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        answer = transport(url, timeout=0.5).request("/messages_status/", {}, retry_unknown=False)
        assert answer.outcome is Outcome.UNKNOWN
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_connection_refused_is_not_unconfirmed_and_nothing_is_lost(monkeypatch, delays):
    connect(monkeypatch, f"http://127.0.0.1:{free_port()}")
    report = CommPeakHook(max_retries=2).send_messages([message(i) for i in range(250)], max_concurrency=1)
    assert report.errors_by_kind() == {"CONNECTION_ERROR": 100, "NOT_SENT": 150}


def test_an_untrusted_certificate_sends_nothing_and_a_retry_after_the_fix_sends_it(monkeypatch, tmp_path, delays):
    sandbox, cert = https_sandbox(tmp_path)
    with sandbox:
        url = sandbox.url.replace("http://", "https://")
        connect(monkeypatch, url)
        report = CommPeakHook(max_retries=1).send_messages([message(0), message(1)])
        assert report.errors_by_kind() == {"CONNECTION_ERROR": 2}
        assert sandbox.accepted == []
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        assert CommPeakHook().send_messages([message(0), message(1)]).accepted == 2
        assert len(sandbox.accepted) == 2


def test_a_proxy_that_refuses_sends_nothing(monkeypatch, delays):
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", json.dumps({"conn_type": "commpeak", "password": "k"}))
    report = CommPeakHook(max_retries=1).send_messages([message(0)])
    assert report.results["m0"]["error"] == "CONNECTION_ERROR"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_sends_nothing_to_its_location(monkeypatch, status):
    with CommPeakSandbox() as target, CommPeakSandbox() as sb:
        sb.inject("redirect", location=f"{target.url}/simple_send/", status=status)
        connect(monkeypatch, sb.url)
        report = CommPeakHook().send_messages([message(i) for i in range(3)])
        assert set(report.errors_by_kind()) == {f"HTTP_{status}"}
        assert target.requests == {}
        assert sb.accepted == []


def test_a_connection_closed_after_the_request_went_out_is_unconfirmed(monkeypatch):
    with CommPeakSandbox() as sb:
        sb.inject("close")
        connect(monkeypatch, sb.url)
        report = CommPeakHook().send_messages([message(0)])
        assert report.results["m0"]["error"] == "UNCONFIRMED"


def test_the_async_transport_shares_the_classifier_and_the_deadline():
    import asyncio

    from airflow_provider_commpeak._engine.transport import AsyncTransport

    async def ask(url: str, timeout: float):
        client = AsyncTransport(
            CommPeakConnectionConfig(conn_id="c", base_url=url, api_key="sandbox-key", timeout=timeout),
            RetryPolicy(max_retries=0),
        )
        try:
            return await client.request("/messages_status/", {"message_uuids": []})
        finally:
            await client.aclose()

    with CommPeakSandbox() as sb:
        assert asyncio.run(ask(sb.url, 5)).outcome is Outcome.OK
        sb.inject("trickle", interval=0.2, seconds=60)
        started = time.monotonic()
        assert asyncio.run(ask(sb.url, 1)).outcome is Outcome.UNKNOWN
        assert time.monotonic() - started < 15
        sb.inject("redirect")
        assert asyncio.run(ask(sb.url, 5)).outcome is Outcome.REFUSED
    assert asyncio.run(ask(f"http://127.0.0.1:{free_port()}", 5)).code == "CONNECTION_ERROR"


class HugeAnswerServer:
    """Answers every request 200 with ``size`` bytes of JSON-looking data, with or without a length."""

    def __init__(self, size: int, *, declare_length: bool) -> None:
        self.size, self.declare_length = size, declare_length
        self.sent = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                length = f"Content-Length: {self.size}\r\n" if self.declare_length else ""
                conn.sendall(
                    f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n".encode()
                )
                chunk = b"[" * 65536
                try:
                    while self.sent < self.size:
                        conn.sendall(chunk)
                        self.sent += len(chunk)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize("declare_length", [True, False])
def test_an_answer_over_the_bound_is_dropped_unread_as_unknown(declare_length):
    from airflow_provider_commpeak._engine.classify import MAX_ANSWER_BYTES

    server = HugeAnswerServer(8 * MAX_ANSWER_BYTES, declare_length=declare_length)
    try:
        answer = transport(server.url, timeout=30).request("/simple_send/", BODY, retry_unknown=False)
        assert (answer.outcome, answer.code) == (Outcome.UNKNOWN, "ANSWER_TOO_LARGE")
        assert server.sent < 4 * MAX_ANSWER_BYTES, "the client read on past its bound"
    finally:
        server.close()


def test_the_async_transport_drops_an_answer_over_the_bound():
    import asyncio

    from airflow_provider_commpeak._engine.classify import MAX_ANSWER_BYTES
    from airflow_provider_commpeak._engine.transport import AsyncTransport

    async def ask(url: str):
        client = AsyncTransport(
            CommPeakConnectionConfig(conn_id="c", base_url=url, api_key="k", timeout=30), RetryPolicy(max_retries=0)
        )
        try:
            return await client.request("/messages_status/", {"message_uuids": ["u"]})
        finally:
            await client.aclose()

    server = HugeAnswerServer(8 * MAX_ANSWER_BYTES, declare_length=False)
    try:
        assert asyncio.run(ask(server.url)).code == "ANSWER_TOO_LARGE"
        assert server.sent < 4 * MAX_ANSWER_BYTES
    finally:
        server.close()
