"""
The sandbox HTTP server: CommPeak's SMS Streams API on 127.0.0.1, with fault injection.

Standard library only (``http.server``): it runs in any Python >= 3.11 whatever Airflow is
installed, starts in milliseconds inside a test, and imports nothing from Airflow.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from airflow_provider_commpeak.sandbox.state import Fault, SandboxSettings, SandboxState

SEND_PATH = "/simple_send/"
STATUS_PATH = "/messages_status/"
MESSAGE_FIELDS = ("internal_id", "sender", "recipient_phone", "message_content")

PROXY_HTML = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
    "<hr><center>cloudflare</center></body></html>"
)
#: The most a request body may be (a generous bound against a runaway client).
MAX_BODY = 64 * 1024 * 1024
#: Seconds an idle keep-alive connection (or a client sending nothing) holds a handler thread.
IDLE_TIMEOUT = 30.0
#: How often the serving loop checks for a stop request (seconds): a sandbox stops this fast.
POLL_INTERVAL = 0.05


class BadRequest(Exception):
    """A request the sandbox answers 400 (or 413) without reading further."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _missing(loc: list[Any]) -> dict[str, Any]:
    return {"loc": loc, "msg": "field required", "type": "value_error.missing"}


def validate_send_body(body: Any) -> list[dict[str, Any]]:
    """FastAPI-style validation errors of a ``simple_send`` body (empty when valid)."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return [_missing(["body", "messages"])]
    errors: list[dict[str, Any]] = []
    for index, message in enumerate(body["messages"]):
        if not isinstance(message, dict):
            errors.append(
                {
                    "loc": ["body", "messages", index],
                    "msg": "value is not a valid dict",
                    "type": "type_error.dict",
                }
            )
            continue
        for name in MESSAGE_FIELDS:
            if not isinstance(message.get(name), str):
                errors.append(_missing(["body", "messages", index, name]))
    return errors


def validate_status_body(body: Any) -> list[dict[str, Any]]:
    """FastAPI-style validation errors of a ``messages_status`` body (empty when valid)."""
    uuids = body.get("message_uuids") if isinstance(body, dict) else None
    if not isinstance(uuids, list) or not all(isinstance(u, str) for u in uuids):
        return [_missing(["body", "message_uuids"])]
    return []


class SandboxHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "CommPeakSandbox/1.0"
    # Headers and body go out in two writes; with Nagle's algorithm on, the body would wait for the
    # client's delayed ACK (~40 ms) on every keep-alive answer.
    disable_nagle_algorithm = True
    # An idle keep-alive connection, or a client that stops sending, frees its thread after this.
    timeout = IDLE_TIMEOUT
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    @property
    def state(self) -> SandboxState:
        return self.server.state

    # -- plumbing ----------------------------------------------------------------------------------

    def _send(
        self,
        code: int,
        body: Any,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _read_json(self) -> tuple[bool, Any]:
        """The body as JSON (``ok`` False when it is not JSON); :class:`BadRequest` for a bad length."""
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isascii() or not text.isdigit():
            raise BadRequest(400, "Content-Length must be a non-negative integer")
        length = int(text)
        if length > MAX_BODY:
            raise BadRequest(413, "Request body too large")
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            raise BadRequest(400, "Request body shorter than its Content-Length")
        try:
            return True, json.loads(raw or b"null")
        except RecursionError:
            raise BadRequest(400, "Request body nested too deep") from None
        except ValueError:
            return False, None

    def _drop(self) -> None:
        """Close the connection without an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- routes ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/_sandbox/messages":
            self._send(200, self.state.inspection())
        elif self.path.rstrip("/") == "/_sandbox/stats":
            self._send(200, self.state.stats())
        elif self.path.rstrip("/") == "/_sandbox/health":
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        try:
            ok, body = self._read_json()
        except BadRequest as exc:
            self.close_connection = True
            self._send(exc.code, {"detail": exc.detail}, headers={"Connection": "close"})
            return
        path = self.path.split("?", 1)[0]
        if path.startswith("/_sandbox/"):
            self._control(path, ok, body)
        elif path in (SEND_PATH, STATUS_PATH):
            self._api(path, ok, body)
        else:
            self._send(404, {"detail": "Not Found"})

    def _control(self, path: str, ok: bool, body: Any) -> None:
        if path.rstrip("/") == "/_sandbox/reset":
            self.state.reset()
            self._send(200, {"status": "reset"})
        elif path.rstrip("/") == "/_sandbox/settings":
            if not isinstance(body, dict):
                self._send(400, {"detail": "expected a JSON object of settings"})
                return
            try:
                settings = self.state.update_settings(body)
            except (TypeError, ValueError) as exc:
                self._send(400, {"detail": str(exc)})
                return
            settings.pop("api_key", None)
            self._send(200, settings)
        elif path.rstrip("/") == "/_sandbox/faults":
            items = body.get("faults", [body]) if isinstance(body, dict) else body
            try:
                if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                    raise ValueError('expected a fault object, or {"faults": [...]}')
                faults = [Fault(**item) for item in items]
            except (TypeError, ValueError) as exc:
                self._send(400, {"detail": str(exc)})
                return
            self.state.add_faults(faults)
            self._send(200, {"queued": len(faults)})
        else:
            self._send(404, {"detail": "Not Found"})

    def _api(self, path: str, ok: bool, body: Any) -> None:
        if not self.state.admit():  # over max_in_flight: an edge proxy's bare 429, before the API
            self._send(429, {"detail": "Too Many Requests"})
            return
        try:
            self._serve(path, ok, body)
        finally:
            self.state.leave()

    def _serve(self, path: str, ok: bool, body: Any) -> None:
        settings = self.state.settings
        if settings.latency_ms:
            time.sleep(settings.latency_ms / 1000)
        if self.headers.get("Authorization") != settings.api_key:
            self._send(403, {"detail": "Not authenticated"})
            return
        fault = self.state.next_fault(path)
        if fault is not None and self._fault_before(fault):
            return
        if not ok:
            self._send(422, {"detail": [{"loc": ["body"], "msg": "invalid JSON", "type": "value_error.jsondecode"}]})
            return
        if path == SEND_PATH:
            errors = validate_send_body(body)
            answer = None if errors else self.state.accept(body["messages"])
        elif not self.state.admit_status_request():  # over status_rate_limit
            self._send(429, {"detail": "Too Many Requests"})
            return
        else:
            errors = validate_status_body(body)
            answer = None if errors else self.state.statuses(body["message_uuids"])
        if errors:
            self._send(422, {"detail": errors})
        elif fault is not None:
            self._fault_after(fault, answer)
        else:
            self._send(200, answer)

    def _fault_before(self, fault: Fault) -> bool:
        """Faults that strike before processing; True when the request was answered."""
        if fault.mode == "503":
            self._send(503, {"detail": "Service Unavailable"})
        elif fault.mode == "429":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after > 0 else {}
            self._send(429, {"detail": "Too Many Requests"}, headers=headers)
        elif fault.mode == "close":
            self._drop()
        elif fault.mode == "html":
            self._send(502, PROXY_HTML, content_type="text/html")
        elif fault.mode == "403":
            self._send(403, {"detail": "Not authenticated"})
        elif fault.mode == "redirect":
            self._send(fault.status, {"detail": "Redirect"}, headers={"Location": fault.location})
        else:
            return False
        return True

    def _fault_after(self, fault: Fault, answer: Any) -> None:
        """Faults that strike after the request was processed."""
        if fault.mode in ("500", "502", "504"):
            self._send(int(fault.mode), {"detail": HTTPStatus(int(fault.mode)).phrase})
        elif fault.mode == "close_after_accept":
            self._drop()
        elif fault.mode == "hang":
            self.state.wake.wait(fault.seconds)
            self._drop()
        elif fault.mode == "not_json":
            self._send(200, "<html><body>OK</body></html>", content_type="text/html")
        elif fault.mode == "trickle":
            self._trickle(fault, answer)
        else:  # pragma: no cover - every mode is handled before or after
            self._send(200, answer)

    def _trickle(self, fault: Fault, answer: Any) -> None:
        """Send the answer one byte every ``interval`` seconds, for at most ``seconds``, then close."""
        data = json.dumps(answer).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        deadline = time.monotonic() + fault.seconds
        try:
            for byte in head.encode() + data:
                if time.monotonic() >= deadline or self.state.wake.wait(fault.interval):
                    break
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        except OSError:
            pass
        self._drop()


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading server that carries the sandbox's state."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: SandboxState, *, verbose: bool = False) -> None:
        self.state = state
        self.verbose = verbose
        super().__init__(address, SandboxHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer (killed, timed out) is normal here: no traceback."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)) and not self.verbose:
            return
        super().handle_error(request, client_address)


class CommPeakSandbox:
    """
    A CommPeak emulator in a background thread, for tests and local development.

    .. code-block:: python

        with CommPeakSandbox(rate_limit=50) as sb:
            requests.post(f"{sb.url}/simple_send/", headers={"Authorization": sb.api_key}, json=...)
            assert len(sb.accepted) == 2

    :param api_key: The key it accepts.
    :param host: The address to bind (loopback by default).
    :param port: The port; 0 picks a free one.
    :param latency_ms: Added to every API answer.
    :param rate_limit: Messages per second before per-message ``RATE_LIMIT``; 0 = off.
    :param delivery_delay: Seconds a message stays ``sent`` before its final status.
    :param seed: Makes uuids reproducible.
    :param max_in_flight: API requests served at once; one more is answered 429 without
        ``Retry-After`` (an edge proxy's concurrency cap); 0 = no cap.
    :param status_rate_limit: ``messages_status`` requests per second, spaced evenly with no burst
        (as nginx's ``limit_req`` does); one sooner is answered 429 without ``Retry-After``; 0 = off.
    :param verbose: Log each request to stderr.
    """

    def __init__(
        self,
        *,
        api_key: str = "sandbox-key",
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        rate_limit: float = 0.0,
        delivery_delay: float = 1.0,
        seed: int | None = None,
        max_in_flight: int = 0,
        status_rate_limit: float = 0.0,
        verbose: bool = False,
    ) -> None:
        settings = SandboxSettings(
            api_key=api_key,
            latency_ms=latency_ms,
            rate_limit=rate_limit,
            delivery_delay=delivery_delay,
            seed=seed,
            max_in_flight=max_in_flight,
            status_rate_limit=status_rate_limit,
        )
        self.state = SandboxState(settings)
        self._server = SandboxHTTPServer((host, port), self.state, verbose=verbose)
        self._thread: threading.Thread | None = None

    @property
    def api_key(self) -> str:
        return self.state.settings.api_key

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def connection_json(self) -> str:
        """The ``AIRFLOW_CONN_COMMPEAK_DEFAULT`` value that points Airflow at this sandbox."""
        return json.dumps({"conn_type": "commpeak", "password": self.api_key, "host": self.url})

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """Every acceptance so far (internal_id, message_uuid, number, text, times_accepted...)."""
        return self.state.inspection()["messages"]

    @property
    def requests(self) -> dict[str, int]:
        """How many requests each API path received."""
        with self.state.lock:
            return dict(self.state.requests)

    def inject(self, mode: str, count: int = 1, **options: Any) -> None:
        """Queue a fault for the next ``count`` matching requests (see :class:`Fault`)."""
        self.state.add_faults([Fault(mode=mode, count=count, **options)])

    def reset(self) -> None:
        """Forget every message and fault."""
        self.state.reset()

    def drain(self, seconds: float) -> None:
        """Accept nothing for ``seconds``, as if another client of the key used the whole rate limit."""
        self.state.update_settings({"drain": seconds})

    def stats(self) -> dict[str, Any]:
        """Counts only (accepted, duplicated, refused, requests, first refusal time...)."""
        return self.state.stats()

    def start(self) -> CommPeakSandbox:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_INTERVAL,), name="commpeak-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; requests held by a fault are let go first."""
        self.state.wake.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (from another thread) or a signal."""
        try:
            self._server.serve_forever(POLL_INTERVAL)
        finally:
            self._server.server_close()

    def __enter__(self) -> CommPeakSandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
