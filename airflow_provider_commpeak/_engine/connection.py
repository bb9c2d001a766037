"""Reading a ``commpeak`` connection into what the sync and async HTTP paths both need."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_commpeak import __version__
from airflow_provider_commpeak._engine.retry import finite_seconds
from airflow_provider_commpeak.exceptions import CommPeakError

DEFAULT_BASE_URL = "https://sendsms.commpeak.com"
#: Seconds a request may take in all (connect and the whole answer) when the connection sets none.
DEFAULT_TIMEOUT = 30.0
#: Seconds to wait for a TCP (and TLS) connection, at most the whole timeout.
CONNECT_TIMEOUT = 10.0
#: The longest timeout accepted: beyond this a request is better called hung.
MAX_TIMEOUT = 600.0

SEND_PATH = "/simple_send/"
STATUS_PATH = "/messages_status/"


def _is_true(value: object) -> bool:
    return value is True or str(value).strip().lower() in {"true", "1", "yes"}


def is_loopback(hostname: str | None) -> bool:
    """Whether ``hostname`` names this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if not hostname:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def build_base_url(
    host: str | None, *, conn_id: str, port: int | None = None, allow_insecure_http: bool = False
) -> str:
    """
    Turn the connection's host (and port) into a base URL.

    Empty -> :data:`DEFAULT_BASE_URL`; a bare host gets ``https://``; a port given apart (as a
    connection URI does) is added when the host names none; ``http://`` is refused unless the host
    is loopback (a local sandbox) or ``allow_insecure_http`` is set, so a key never crosses a
    network in clear text by accident. Credentials, a query or a fragment in the host are refused.
    """
    text = (host or "").strip().rstrip("/")
    if not text:
        return DEFAULT_BASE_URL
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise CommPeakError(
            f"Connection {conn_id!r}: the host holds credentials (user:password@...); they are never "
            "sent. Put the CommPeak API key in the password field and only the URL in the host."
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise CommPeakError(f"Connection {conn_id!r}: the host's port is not a number") from None
    if port and parts.port is None and parts.hostname:
        text = parts._replace(netloc=f"{parts.netloc}:{int(port)}").geturl()
        parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise CommPeakError(f"Connection {conn_id!r}: host {text[:100]!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise CommPeakError(f"Connection {conn_id!r}: the host must not hold a query or a fragment")
    if parts.scheme == "http" and not (is_loopback(parts.hostname) or allow_insecure_http):
        raise CommPeakError(
            f"Connection {conn_id!r}: refusing plain http:// to {parts.hostname}, which is not a loopback "
            "address (the API key would travel unencrypted). Use https://, or set the extra "
            '"allow_insecure_http": true if you really mean it.'
        )
    return text


def check_api_key(password: str | None, *, conn_id: str) -> str:
    """
    The API key from the password field, or an error naming the connection and the problem.

    Surrounding whitespace (a pasted newline) is dropped. A key with whitespace inside, control
    characters or characters beyond printable ASCII cannot travel in an HTTP header: it is refused
    here, with a text that never shows the key in any form.
    """
    api_key = (password or "").strip()
    if not api_key:
        raise CommPeakError(f"Connection {conn_id!r} has no API key: put the CommPeak API key in its password field")
    if any(char.isspace() for char in api_key):
        problem = "whitespace inside it"
    elif any(ord(char) < 0x20 or ord(char) == 0x7F for char in api_key):
        problem = "control characters"
    elif not api_key.isascii():
        problem = "characters beyond printable ASCII"
    else:
        return api_key
    raise CommPeakError(
        f"Connection {conn_id!r}: the API key holds {problem}, which an HTTP header cannot carry; "
        "paste the key again (the key is not shown here)"
    )


@dataclass(frozen=True)
class CommPeakConnectionConfig:
    """
    Everything needed to call the API, read from a ``commpeak`` connection.

    :param conn_id: The connection id, for error texts.
    :param base_url: Scheme and host (and optional path prefix), no trailing slash.
    :param api_key: The raw API key sent as the ``Authorization`` header. Never shown in ``repr``.
    :param timeout: Seconds one request may take in all: connecting and reading the whole answer.
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_fields(
        cls,
        *,
        conn_id: str,
        host: str | None,
        password: str | None,
        extra: dict[str, Any] | None,
        port: int | None = None,
        timeout: float | None = None,
    ) -> CommPeakConnectionConfig:
        """
        Build the config from a connection's fields.

        :param timeout: Overrides the connection's ``timeout`` extra.
        """
        extra = extra or {}
        api_key = check_api_key(password, conn_id=conn_id)
        if timeout is None and extra.get("timeout") not in (None, ""):
            timeout = extra["timeout"]
        if timeout is not None:
            try:
                timeout = finite_seconds(timeout, name="timeout", minimum=0.1, maximum=MAX_TIMEOUT)
            except ValueError as exc:
                raise CommPeakError(f"Connection {conn_id!r}: {exc}") from None
        base_url = build_base_url(
            host,
            conn_id=conn_id,
            port=port,
            allow_insecure_http=_is_true(extra.get("allow_insecure_http", False)),
        )
        return cls(conn_id=conn_id, base_url=base_url, api_key=api_key, timeout=timeout or DEFAULT_TIMEOUT)

    def with_timeout(self, timeout: float) -> CommPeakConnectionConfig:
        """The same connection with another timeout (e.g. a short one for a connection test)."""
        return replace(self, timeout=timeout)

    @property
    def connect_timeout(self) -> float:
        """Seconds to wait for the TCP (and TLS) connection."""
        return min(CONNECT_TIMEOUT, self.timeout)

    def url(self, path: str) -> str:
        """The full URL of an API path such as :data:`SEND_PATH`."""
        return f"{self.base_url}{path}"

    def headers(self) -> dict[str, str]:
        """The headers of every request: the raw key (no ``Bearer``) and JSON."""
        return {
            "Authorization": self.api_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": _user_agent(),
        }


def _user_agent() -> str:
    return f"airflow-provider-commpeak/{__version__}"
