"""
The one response classifier: what an HTTP answer (or a failure to get one) means for the request.

The sync sender, the async status reader and the connection test all turn what they got into an
:class:`Answer` here. The question that matters for a send is *did the request reach CommPeak?*:

- ``NOT_PROCESSED``: surely not (nothing left the client, or 429/503 from the edge): safe to resend;
- ``UNKNOWN``: maybe (a read timeout, a reset after sending, 500/502/504, a 200 that is not JSON):
  a send is never resent automatically; its messages are ``UNCONFIRMED``;
- ``AUTH``: the key was refused (401/403); ``REFUSED``: another 4xx, or a redirect (never followed);
- ``OK``: a 2xx with a JSON body.

Nothing the server sent is quoted in a description: an echo of the request would put phone numbers
and texts in logs. Descriptions keep the status code, FastAPI's ``loc``/``type`` and a fixed phrase;
bodies are summarised by type and length.
"""

from __future__ import annotations

import contextlib
import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_commpeak._engine.retry import parse_retry_after


class Outcome(enum.Enum):
    OK = "ok"
    NOT_PROCESSED = "not_processed"
    UNKNOWN = "unknown"
    AUTH = "auth"
    REFUSED = "refused"


class Failure(enum.Enum):
    """Why no answer came, in terms both HTTP clients can be mapped to."""

    CONNECT = "connection failed"
    TLS = "TLS handshake failed"
    PROXY = "the proxy refused the connection"
    INVALID_REQUEST = "the request could not be built (invalid header or URL)"
    TIMEOUT = "no answer in time"
    DEADLINE = "the answer did not complete within the request's deadline"
    BROKEN = "the connection broke"


@dataclass(frozen=True)
class Answer:
    """
    What one request got, classified.

    :param outcome: See :class:`Outcome`.
    :param code: A short code for reports and logs, e.g. ``HTTP_503`` or ``CONNECTION_ERROR``.
    :param description: A sentence for logs and errors, quoting nothing the server sent.
    :param status_code: The HTTP status, when there was an answer.
    :param body: The decoded JSON body of an ``OK`` answer.
    :param retry_after: Seconds a 429/503 asked to wait (finite, capped), if it said.
    :param retryable: Trying the same request again may help (connection failures, 429, 503).
    :param fatal: Every other request would fail the same way (a refused key, a redirect, a request
        that cannot be built): stop sending.
    :param detail: FastAPI's validation errors, ``loc`` and ``type`` only.
    """

    outcome: Outcome
    code: str
    description: str
    status_code: int | None = None
    body: Any = None
    retry_after: float | None = None
    retryable: bool = False
    fatal: bool = False
    detail: Any = None


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,59}$")
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,100}$")
#: The largest answer read (a status answer for a chunk of uuids is about 1 MB): past it the answer
#: is dropped unread and the request's outcome is unknown.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
#: The longest Retry-After honoured (a longer one is capped: the give-up rule decides instead).
MAX_RETRY_AFTER = 300.0


def safe_code(value: object) -> str:
    """A per-message error from the API as a report code: kept if it looks like a code, else ``API_ERROR``."""
    text = str(value)
    return text if _CODE.match(text) else "API_ERROR"


_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def safe_token(value: object) -> str | None:
    """An identifier from the API (a uuid, a task id) if it looks like one, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    return text if _TOKEN.match(text) else None


def describe_body(content: bytes, content_type: str | None = None) -> str:
    """A body summarised by kind and length, never quoted: ``"an HTML page of 2,345 bytes"``."""
    if not content:
        return "an empty body"
    kind = (content_type or "").split(";")[0].strip().lower()
    head = content[:64].lstrip().lower()
    if "html" in kind or head.startswith((b"<!doctype html", b"<html")):
        what = "an HTML page"
    elif "json" in kind or head[:1] in (b"{", b"["):
        what = "a JSON body"
    else:
        what = "a text body"
    return f"{what} of {len(content):,} bytes"


def describe_shape(value: Any) -> str:
    """The shape of a decoded JSON value, quoting no value: ``"an object with keys 'detail' (str)"``."""
    if isinstance(value, Mapping):
        keys = [k for k in value if isinstance(k, str) and _IDENTIFIER.match(k)][:5]
        others = len(value) - len(keys)
        parts = [f"{k!r} ({type(value[k]).__name__})" for k in keys]
        if others > 0:
            parts.append(f"{others} other key(s)")
        if not parts:
            return "an empty object"
        return f"an object with {'keys ' if keys else ''}{', '.join(parts)}"
    if isinstance(value, list):
        kinds = sorted({type(item).__name__ for item in value[:50]})
        return f"a list of {len(value)} item(s) ({', '.join(kinds) or 'none'})"
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return {bool: "a boolean", int: "a number", float: "a number", type(None): "null"}.get(type(value), "a value")


def _safe_loc(loc: Any) -> list[Any]:
    if not isinstance(loc, list):
        return []
    return [
        part
        if isinstance(part, int) and not isinstance(part, bool)
        else part
        if isinstance(part, str) and _IDENTIFIER.match(part)
        else "?"
        for part in loc[:8]
    ]


def safe_detail(body: Any) -> Any:
    """FastAPI's ``detail`` list with ``loc`` and ``type`` only (``msg`` and ``input`` may echo the request)."""
    detail = body.get("detail") if isinstance(body, Mapping) else None
    if not isinstance(detail, list):
        return None
    return [
        {
            "loc": _safe_loc(item.get("loc")),
            "type": item["type"] if isinstance(item.get("type"), str) and _TYPE.match(item["type"]) else "?",
        }
        for item in detail[:20]
        if isinstance(item, Mapping)
    ]


def _location_host(location: str | None) -> str:
    try:
        host = urlsplit(location or "").hostname
    except ValueError:
        host = None
    return host if host and _HOST.match(host) else "an unnamed host"


def classify_response(status: int, headers: Mapping[str, str], content: bytes, *, path: str) -> Answer:
    """
    Classify an HTTP answer.

    :param status: The HTTP status code.
    :param headers: The answer's headers (case-insensitive mapping).
    :param content: The raw body.
    :param path: The API path asked, for descriptions.
    """
    code = f"HTTP_{status}"
    if 200 <= status < 300:
        try:
            body = json.loads(content.decode("utf-8-sig"))
        except RecursionError:
            return Answer(
                Outcome.UNKNOWN,
                "NOT_JSON",
                f"HTTP {status} from {path} with a JSON body of {len(content):,} bytes nested too deep to read",
                status_code=status,
            )
        except (UnicodeDecodeError, ValueError):
            return Answer(
                Outcome.UNKNOWN,
                "NOT_JSON",
                f"HTTP {status} from {path} with {describe_body(content, headers.get('Content-Type'))}, not JSON",
                status_code=status,
            )
        return Answer(Outcome.OK, code, f"HTTP {status} from {path}", status_code=status, body=body)
    if 300 <= status < 400:
        return Answer(
            Outcome.REFUSED,
            code,
            f"HTTP {status} from {path}: a redirect to {_location_host(headers.get('Location'))}, "
            "never followed (the messages would go to another address); check the connection's host",
            status_code=status,
            fatal=True,
        )
    if status in (401, 403):
        return Answer(
            Outcome.AUTH,
            code,
            f"HTTP {status} from {path}: the API key was refused (not authenticated)",
            status_code=status,
            fatal=True,
        )
    if status in (429, 503):
        retry_after = parse_retry_after(headers.get("Retry-After"), cap=MAX_RETRY_AFTER)
        asked = f", Retry-After {retry_after:g} s" if retry_after is not None else ""
        return Answer(
            Outcome.NOT_PROCESSED,
            code,
            f"HTTP {status} from {path} ({'too many requests' if status == 429 else 'unavailable'}{asked})",
            status_code=status,
            retry_after=retry_after,
            retryable=True,
        )
    if status >= 500:
        return Answer(
            Outcome.UNKNOWN,
            code,
            f"HTTP {status} from {path} with {describe_body(content, headers.get('Content-Type'))}",
            status_code=status,
        )
    detail = None
    with contextlib.suppress(UnicodeDecodeError, ValueError, RecursionError):
        detail = safe_detail(json.loads(content.decode("utf-8-sig")))
    where = f": {detail}" if detail else f" with {describe_body(content, headers.get('Content-Type'))}"
    return Answer(Outcome.REFUSED, code, f"HTTP {status} from {path}{where}", status_code=status, detail=detail)


def classify_too_large(status: int, *, path: str) -> Answer:
    """An answer larger than :data:`MAX_ANSWER_BYTES`, dropped unread: its outcome is unknown."""
    return Answer(
        Outcome.UNKNOWN,
        "ANSWER_TOO_LARGE",
        f"HTTP {status} from {path} with a body over {MAX_ANSWER_BYTES:,} bytes, dropped unread",
        status_code=status,
    )


def classify_failure(failure: Failure, *, bytes_sent: bool | None, path: str) -> Answer:
    """
    Classify a request that got no answer.

    :param failure: What went wrong.
    :param bytes_sent: Whether any byte of the request left the client: ``False`` proves the server
        never saw it; ``None`` when the client cannot tell (then the kind of failure decides).
    :param path: The API path asked, for descriptions.
    """
    before_sending = failure in (Failure.CONNECT, Failure.TLS, Failure.PROXY, Failure.INVALID_REQUEST)
    if bytes_sent is False or (bytes_sent is None and before_sending):
        invalid = failure is Failure.INVALID_REQUEST
        return Answer(
            Outcome.NOT_PROCESSED,
            "INVALID_REQUEST" if invalid else "CONNECTION_ERROR",
            f"{failure.value} before the request to {path} was sent",
            retryable=not invalid,
            fatal=invalid,
        )
    code = {Failure.TIMEOUT: "READ_TIMEOUT", Failure.DEADLINE: "DEADLINE_EXCEEDED"}.get(failure, "CONNECTION_BROKEN")
    return Answer(Outcome.UNKNOWN, code, f"{failure.value} after the request to {path} was sent")
