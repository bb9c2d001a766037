"""
A live check that a CommPeak endpoint still answers the way the provider relies on.

``commpeak-sandbox check --url URL`` (the key from ``COMMPEAK_API_KEY`` or ``--conn-id``) runs the
API's documented calls in a way that sends no SMS: a status query for a uuid no message has, and
sends CommPeak must refuse (no key; a malformed body). With ``--to NUMBER`` it also sends one real
SMS to that number and reads its status. Each call is judged by the provider's own classifier and
status reader, and printed with what was expected and what came back (status code and shape, never
a body verbatim, never the key). Exit code 1 on any mismatch.
"""

from __future__ import annotations

import json
import re
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from airflow_provider_commpeak._engine.classify import Outcome, classify_response, describe_shape
from airflow_provider_commpeak._engine.connection import SEND_PATH, STATUS_PATH
from airflow_provider_commpeak._engine.status import UNKNOWN, read_statuses
from airflow_provider_commpeak._input.phones import mask_phone
from airflow_provider_commpeak.exceptions import CommPeakApiError

#: Seconds each call may take.
CHECK_TIMEOUT = 15.0
_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


@dataclass
class CheckResult:
    """One call: what it checked, whether the answer had the shape the provider relies on, what came back."""

    name: str
    ok: bool
    seen: str


class ContractCheck:
    """
    Run the checks against ``base_url`` with ``api_key``.

    :param base_url: The API's base URL (``https://sendsms.commpeak.com``, or a sandbox's).
    :param api_key: The key (sent as CommPeak expects: the raw key in ``Authorization``).
    :param to: A number to send one real SMS to (international digits); ``None`` sends none.
    :param session: The HTTP session (tests pass their own).
    """

    def __init__(self, base_url: str, api_key: str, *, to: str | None = None, session: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.to = to
        self.session = session or requests.Session()
        self.session.trust_env = False

    def _post(self, path: str, body: bytes, *, key: str | None) -> tuple[int, Any, str]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = key
        response = self.session.post(
            self.base_url + path, data=body, headers=headers, timeout=CHECK_TIMEOUT, allow_redirects=False
        )
        answer = classify_response(response.status_code, response.headers, response.content, path=path)
        return response.status_code, answer, answer.description

    def _call(self, name: str, judge: Callable[[], tuple[bool, str]]) -> CheckResult:
        try:
            ok, seen = judge()
        except requests.RequestException as exc:
            ok, seen = False, f"no answer ({type(exc).__name__})"
        return CheckResult(name, ok, seen)

    def run(self) -> list[CheckResult]:
        """Every check, in order (a real send only with ``to``)."""
        results = [
            self._call("messages_status with the key, for a uuid no message has: 200, a readable answer", self._status),
            self._call(
                "messages_status without a key: 401/403", lambda: self._refused(STATUS_PATH, b'{"message_uuids": []}')
            ),
            self._call(
                "simple_send without a key: 401/403, nothing sent", lambda: self._refused(SEND_PATH, _probe_send())
            ),
            self._call("simple_send with a malformed body: refused (4xx), nothing sent", self._malformed),
        ]
        if self.to:
            results.append(
                self._call(f"simple_send of one SMS to {mask_phone(self.to)}: accepted with a uuid", self._send)
            )
        return results

    def _status(self) -> tuple[bool, str]:
        probe = str(uuid_module.uuid4())
        body = json.dumps({"message_uuids": [probe]}).encode()
        status, answer, description = self._post(STATUS_PATH, body, key=self.api_key)
        if answer.outcome is not Outcome.OK:
            return False, description
        try:
            read = read_statuses(answer.body, [probe])
        except CommPeakApiError:
            return False, f"HTTP {status}, an answer of no known shape ({describe_shape(answer.body)})"
        status_of_probe = read.statuses.get(probe, UNKNOWN)
        return True, f"HTTP {status}, {describe_shape(answer.body)}; the unknown uuid reads as {status_of_probe!r}"

    def _refused(self, path: str, body: bytes) -> tuple[bool, str]:
        _status, answer, description = self._post(path, body, key=None)
        return answer.outcome is Outcome.AUTH, description

    def _malformed(self) -> tuple[bool, str]:
        status, answer, description = self._post(SEND_PATH, b'{"messages": "not a list"}', key=self.api_key)
        return 400 <= status < 500 and answer.outcome is not Outcome.AUTH, description

    def _send(self) -> tuple[bool, str]:
        assert self.to is not None
        internal_id = f"contract-check-{uuid_module.uuid4().hex[:12]}"
        message = {
            "internal_id": internal_id,
            "sender": "CHECK",
            "recipient_phone": self.to,
            "message_content": "airflow-provider-commpeak contract check",
        }
        status, answer, description = self._post(
            SEND_PATH, json.dumps({"messages": [message]}).encode(), key=self.api_key
        )
        if answer.outcome is not Outcome.OK or not isinstance(answer.body, dict):
            return False, description
        entries = answer.body.get("messages")
        entry = entries[0] if isinstance(entries, list) and entries and isinstance(entries[0], dict) else {}
        problems = []
        if answer.body.get("status") is not True:
            problems.append("'status' is not true")
        if not isinstance(answer.body.get("task_id"), str):
            problems.append("no 'task_id'")
        if entry.get("internal_id") != internal_id:
            problems.append("the entry does not echo the internal_id as sent")
        if entry.get("error") is not None:
            problems.append(f"the message was refused ({str(entry.get('error'))[:40]})")
        if not (isinstance(entry.get("message_uuid"), str) and re.match(_UUID, entry["message_uuid"])):
            problems.append("no message_uuid of uuid shape")
        seen = f"HTTP {status}, {describe_shape(answer.body)}"
        return not problems, seen + ("; " + "; ".join(problems) if problems else "")


def _probe_send() -> bytes:
    """A send body of CommPeak's documented shape, for the unauthenticated call (refused: never sent)."""
    message = {
        "internal_id": "contract-check",
        "sender": "CHECK",
        "recipient_phone": "15550000009",
        "message_content": "x",
    }
    return json.dumps({"messages": [message]}).encode()


def report(results: list[CheckResult]) -> str:
    """The results, one line each: ``ok`` or ``MISMATCH``, the check, what came back."""
    return "\n".join(f"{'ok      ' if r.ok else 'MISMATCH'}  {r.name}\n          {r.seen}" for r in results)
