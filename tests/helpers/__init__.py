"""Helpers shared by the tests: message builders, canned API answers, fakes and small servers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

API_KEY = "test-key-5f0c2d9a"
BASE_URL = "https://sendsms.commpeak.com"
SEND_URL = f"{BASE_URL}/simple_send/"
STATUS_URL = f"{BASE_URL}/messages_status/"


def message(i: int, phone: str = "972524265292", **overrides: Any) -> dict[str, Any]:
    """A valid message with internal_id ``m<i>``."""
    return {
        "internal_id": f"m{i}",
        "sender": "GLOBAL",
        "recipient_phone": phone,
        "message_content": f"test message {i}",
        **overrides,
    }


def accepted_answer(request: Any, context: Any) -> dict[str, Any]:
    """A requests-mock callback accepting every message of the request."""
    messages = request.json()["messages"]
    return {
        "status": True,
        "task_id": "task-1",
        "messages": [
            {"internal_id": m["internal_id"], "message_uuid": f"uuid-{m['internal_id']}", "error": None}
            for m in messages
        ],
    }


def send_answer(*results: tuple[str, str | None, Any], task_id: str = "t") -> dict[str, Any]:
    """A ``simple_send`` answer naming each ``(internal_id, message_uuid, error)``, in order."""
    return {
        "status": True,
        "task_id": task_id,
        "messages": [{"internal_id": i, "message_uuid": u, "error": e} for i, u, e in results],
    }


def sent_ids(requests_mock: Any, url: str = SEND_URL) -> list[list[str]]:
    """The internal_ids of each send request a requests-mock saw, in order."""
    return [[m["internal_id"] for m in r.json()["messages"]] for r in requests_mock.request_history if r.url == url]


def free_port() -> int:
    """A port nothing listens on right now, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def poll(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Call ``check`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def window_in_israel(lead: float) -> tuple[Any, Any]:
    """
    A send window in the recipients' (Israel's) local time that opens ``lead`` seconds from now and
    closes an hour later, or at 23:59:59 if that comes first (a window that wraps midnight would be
    another test); the test is skipped when less than 10 minutes of it are left.
    """
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    import pytest

    local_now = datetime.now(ZoneInfo("Asia/Jerusalem"))
    opens = (local_now + timedelta(seconds=lead)).replace(microsecond=0)
    closes = min(local_now + timedelta(hours=1), local_now.replace(hour=23, minute=59, second=59))
    if closes - opens < timedelta(minutes=10):
        pytest.skip("too close to midnight in Israel for a same-day window")
    return opens, closes
