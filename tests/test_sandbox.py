"""The sandbox itself, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from airflow_provider_commpeak.sandbox import REFUSED_NUMBER, TEST_NUMBERS, CommPeakSandbox
from helpers import poll

pytestmark = pytest.mark.sandbox

#: CommPeak's own example request from its Postman collection.
POSTMAN_BODY = {
    "messages": [
        {
            "internal_id": "1003",
            "sender": "GLOBAL",
            "recipient_phone": "972524265292",
            "message_content": "test message 1",
        },
        {
            "internal_id": "1004",
            "sender": "GLOBAL",
            "recipient_phone": "972545330008",
            "message_content": "test message 2",
        },
    ]
}


def post(sb: CommPeakSandbox, path: str, body, key: str | None = None, **kwargs) -> requests.Response:
    return requests.post(
        f"{sb.url}{path}", json=body, headers={"Authorization": key or sb.api_key}, timeout=5, **kwargs
    )


def wait_until(predicate, timeout: float = 10.0):
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met before the deadline")


@pytest.fixture
def sb():
    with CommPeakSandbox(delivery_delay=0.3, seed=7) as sandbox:
        yield sandbox


def test_postman_example_gets_the_documented_answer(sb):
    answer = post(sb, "/simple_send/", POSTMAN_BODY)
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] is True
    assert isinstance(body["task_id"], str)
    assert [(m["internal_id"], m["error"]) for m in body["messages"]] == [("1003", None), ("1004", None)]
    assert all(len(m["message_uuid"]) == 36 for m in body["messages"])


@pytest.mark.parametrize("key", ["", "wrong-key"])
def test_wrong_or_missing_key_is_403(sb, key):
    answer = requests.post(f"{sb.url}/simple_send/", json=POSTMAN_BODY, headers={"Authorization": key}, timeout=5)
    assert (answer.status_code, answer.json()) == (403, {"detail": "Not authenticated"})
    assert sb.accepted == []


@pytest.mark.parametrize(
    "body",
    [{"messages": [{"internal_id": "1"}]}, {"msgs": []}, [1, 2], {"messages": ["x"]}],
)
def test_malformed_body_is_422_fastapi_style(sb, body):
    answer = post(sb, "/simple_send/", body)
    assert answer.status_code == 422
    assert isinstance(answer.json()["detail"], list)


def test_invalid_json_is_422(sb):
    answer = requests.post(
        f"{sb.url}/simple_send/", data=b"{not json", headers={"Authorization": sb.api_key}, timeout=5
    )
    assert answer.status_code == 422


@pytest.mark.parametrize("path", ["/simple_send/", "/messages_status/"])
def test_a_body_nested_too_deep_is_answered_400_not_dropped(sb, path):
    answer = requests.post(
        f"{sb.url}{path}", data=b"[" * 200_000 + b"]" * 200_000, headers={"Authorization": sb.api_key}, timeout=5
    )
    assert (answer.status_code, answer.json()) == (400, {"detail": "Request body nested too deep"})
    assert sb.accepted == []


def test_rate_limit_truncates_the_batch_like_commpeaks_example():
    with CommPeakSandbox(rate_limit=1) as sb:
        body = post(sb, "/simple_send/", POSTMAN_BODY).json()
        assert body["messages"][0]["error"] is None
        assert post(sb, "/simple_send/", {"messages": POSTMAN_BODY["messages"][1:] * 1}).json()["messages"] == [
            {"internal_id": "1004", "message_uuid": None, "error": "RATE_LIMIT"}
        ]
        both = {"messages": [dict(m, internal_id=f"x{i}") for i, m in enumerate(POSTMAN_BODY["messages"])]}
        assert len(post(sb, "/simple_send/", both).json()["messages"]) == 1  # first RATE_LIMIT, second left out


def test_statuses_move_from_sent_to_final_and_test_numbers_choose(sb):
    numbers = [*TEST_NUMBERS, "972524265292"]
    body = {
        "messages": [
            {"internal_id": str(i), "sender": "S", "recipient_phone": n, "message_content": "x"}
            for i, n in enumerate(numbers)
        ]
    }
    uuids = [m["message_uuid"] for m in post(sb, "/simple_send/", body).json()["messages"]]

    def statuses():
        answer = post(sb, "/messages_status/", {"message_uuids": [*uuids, "no-such-uuid"]}).json()["messages"]
        return [s["status"] for s in answer]

    assert statuses() == ["sent"] * len(numbers)
    final = [*TEST_NUMBERS.values(), "delivered"]
    assert wait_until(lambda: statuses() == final)


def test_refused_number_gets_a_per_message_error(sb):
    body = {
        "messages": [{"internal_id": "1", "sender": "S", "recipient_phone": REFUSED_NUMBER, "message_content": "x"}]
    }
    assert post(sb, "/simple_send/", body).json()["messages"] == [
        {"internal_id": "1", "message_uuid": None, "error": "INVALID_RECIPIENT"}
    ]


def test_seed_makes_uuids_deterministic():
    def uuids(seed):
        with CommPeakSandbox(seed=seed) as sb:
            return [m["message_uuid"] for m in post(sb, "/simple_send/", POSTMAN_BODY).json()["messages"]]

    assert uuids(42) == uuids(42)
    assert uuids(42) != uuids(43)


def test_inspection_counts_times_accepted_and_reset_forgets(sb):
    post(sb, "/simple_send/", POSTMAN_BODY)
    post(sb, "/simple_send/", POSTMAN_BODY)
    record = requests.get(f"{sb.url}/_sandbox/messages", timeout=5).json()
    assert record["count"] == 4
    assert {m["internal_id"]: m["times_accepted"] for m in record["messages"]} == {"1003": 2, "1004": 2}
    assert record["requests"] == {"/simple_send/": 2}
    stats = requests.get(f"{sb.url}/_sandbox/stats", timeout=5).json()
    assert {k: stats[k] for k in ("accepted", "distinct_internal_ids", "duplicated", "refused", "requests")} == {
        "accepted": 4,
        "distinct_internal_ids": 2,
        "duplicated": 2,
        "refused": 0,
        "requests": {"/simple_send/": 2},
    }
    requests.post(f"{sb.url}/_sandbox/reset", timeout=5)
    assert sb.accepted == []
    assert sb.requests == {}


def test_faults_through_the_control_endpoint(sb):
    answer = requests.post(f"{sb.url}/_sandbox/faults", json={"faults": [{"mode": "503", "count": 2}]}, timeout=5)
    assert answer.json() == {"queued": 1}
    assert [post(sb, "/simple_send/", POSTMAN_BODY).status_code for _ in range(3)] == [503, 503, 200]
    assert len(sb.accepted) == 2
    assert requests.post(f"{sb.url}/_sandbox/faults", json={"mode": "nonsense"}, timeout=5).status_code == 400


def test_fault_429_carries_retry_after(sb):
    sb.inject("429", retry_after=3)
    answer = post(sb, "/simple_send/", POSTMAN_BODY)
    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "3")
    assert sb.accepted == []


@pytest.mark.parametrize("mode", ["500", "502", "504"])
def test_fault_error_after_accepting(sb, mode):
    sb.inject(mode)
    assert post(sb, "/simple_send/", POSTMAN_BODY).status_code == int(mode)
    assert len(sb.accepted) == 2


def test_fault_html_page_before_processing(sb):
    sb.inject("html")
    answer = post(sb, "/simple_send/", POSTMAN_BODY)
    assert answer.status_code == 502
    assert answer.headers["Content-Type"] == "text/html"
    assert "<html>" in answer.text
    assert sb.accepted == []


def test_fault_not_json_after_accepting(sb):
    sb.inject("not_json")
    answer = post(sb, "/simple_send/", POSTMAN_BODY)
    assert answer.status_code == 200
    with pytest.raises(ValueError):
        answer.json()
    assert len(sb.accepted) == 2


def test_fault_close_drops_the_connection_before_processing(sb):
    sb.inject("close")
    with pytest.raises(requests.exceptions.ConnectionError):
        post(sb, "/simple_send/", POSTMAN_BODY)
    assert sb.accepted == []


def test_fault_close_after_accept(sb):
    sb.inject("close_after_accept")
    with pytest.raises(requests.exceptions.ConnectionError):
        post(sb, "/simple_send/", POSTMAN_BODY)
    assert len(sb.accepted) == 2


def test_fault_hang_after_accept_outlasts_the_client_timeout(sb):
    sb.inject("hang", seconds=30)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(f"{sb.url}/simple_send/", json=POSTMAN_BODY, headers={"Authorization": sb.api_key}, timeout=0.5)
    assert len(sb.accepted) == 2


def test_fault_after_lets_requests_through_first(sb):
    sb.inject("503", count=1, after=2)
    assert [post(sb, "/simple_send/", POSTMAN_BODY).status_code for _ in range(4)] == [200, 200, 503, 200]


def test_fault_403_mid_run_and_path_filter(sb):
    sb.inject("403", path="/messages_status/")
    assert post(sb, "/simple_send/", POSTMAN_BODY).status_code == 200
    assert post(sb, "/messages_status/", {"message_uuids": []}).status_code == 403


def test_settings_change_at_run_time(sb):
    answer = requests.post(f"{sb.url}/_sandbox/settings", json={"delivery_delay": 0, "rate_limit": 1}, timeout=5)
    assert answer.json()["delivery_delay"] == 0
    assert "api_key" not in answer.json()
    body = post(sb, "/simple_send/", POSTMAN_BODY).json()
    assert [m["error"] for m in body["messages"]] == [None, "RATE_LIMIT"]
    uuid = body["messages"][0]["message_uuid"]
    assert post(sb, "/messages_status/", {"message_uuids": [uuid]}).json()["messages"][0]["status"] == "delivered"
    assert requests.post(f"{sb.url}/_sandbox/settings", json={"api_key": "x"}, timeout=5).status_code == 400


@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "503", "count": 1.5},
        {"mode": "503", "count": 0},
        {"mode": "503", "count": "2"},
        {"mode": "429", "retry_after": float("nan")},
        {"mode": "hang", "seconds": -1},
        {"mode": "503", "after": -2},
        {"mode": "redirect", "status": 200},
        {"mode": "503", "bogus": 1},
        [1, 2],
        "503",
    ],
)
def test_malformed_faults_are_refused_with_400(sb, fault):
    answer = requests.post(f"{sb.url}/_sandbox/faults", data=json.dumps(fault, allow_nan=True), timeout=5)
    assert answer.status_code == 400
    assert sb.state.faults == []


@pytest.mark.parametrize(
    "settings",
    [{"latency_ms": -5}, {"latency_ms": "x"}, {"rate_limit": float("inf")}, {"delivery_delay": True}, [1]],
)
def test_malformed_settings_are_refused_with_400(sb, settings):
    answer = requests.post(f"{sb.url}/_sandbox/settings", data=json.dumps(settings, allow_nan=True), timeout=5)
    assert answer.status_code == 400
    assert post(sb, "/messages_status/", {"message_uuids": []}).status_code == 200


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "99999999999999999999"])
def test_a_malformed_content_length_is_answered_400_at_once(sb, length):
    host, port = sb.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"POST /simple_send/ HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode())
        answer = conn.recv(4096).decode()
    assert answer.startswith(("HTTP/1.1 400", "HTTP/1.1 413"))


def test_an_idle_keep_alive_connection_is_closed(monkeypatch):
    from airflow_provider_commpeak.sandbox import server

    monkeypatch.setattr(server.SandboxHandler, "timeout", 0.3)
    with CommPeakSandbox() as sandbox:
        host, port = sandbox.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            assert conn.recv(1) == b""  # the sandbox hung up on a client that sent nothing


def test_drain_refuses_everything_for_a_while():
    with CommPeakSandbox(rate_limit=100) as sandbox:
        sandbox.drain(0.5)
        body = post(sandbox, "/simple_send/", POSTMAN_BODY).json()
        assert [m["error"] for m in body["messages"]] == ["RATE_LIMIT"]
        poll(
            "the drain to end",
            lambda: post(sandbox, "/simple_send/", POSTMAN_BODY).json()["messages"][0]["error"] is None,
            timeout=10,
        )
        stats = sandbox.stats()
        assert stats["first_refused_at"] is not None
        assert stats["refused"] >= 2


def test_latency_is_added():
    with CommPeakSandbox(latency_ms=200) as sb:
        started = time.monotonic()
        post(sb, "/messages_status/", {"message_uuids": []})
        assert time.monotonic() - started >= 0.2


def test_pytest_fixture_points_airflow_at_the_sandbox(commpeak_sandbox):
    conn = json.loads(os.environ["AIRFLOW_CONN_COMMPEAK_DEFAULT"])
    assert conn == {
        "conn_type": "commpeak",
        "password": commpeak_sandbox.api_key,
        "host": commpeak_sandbox.url,
    }
    assert commpeak_sandbox.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("command", [["commpeak-sandbox"], [sys.executable, "-m", "airflow_provider_commpeak.sandbox"]])
def test_command_line_prints_url_and_stops_on_sigterm(command, tmp_path):
    executable = (
        os.path.join(os.path.dirname(sys.executable), command[0]) if command[0] == "commpeak-sandbox" else command[0]
    )
    process = subprocess.Popen(
        [executable, *command[1:], "--port", "0", "--api-key", "k1", "--fault", "503:1", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in first
        assert "API key: k1" in first
        url = first.split("listening on ")[1].split()[0]
        assert "AIRFLOW_CONN_COMMPEAK_DEFAULT" in process.stdout.readline()
        answer = requests.post(f"{url}/simple_send/", json=POSTMAN_BODY, headers={"Authorization": "k1"}, timeout=5)
        assert answer.status_code == 503
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()


def test_a_request_over_max_in_flight_gets_a_bare_429_and_sends_nothing():
    import threading

    body = {
        "messages": [{"internal_id": "a", "sender": "S", "recipient_phone": "972524265292", "message_content": "x"}]
    }
    with CommPeakSandbox(max_in_flight=1, latency_ms=300) as sandbox:
        headers = {"Authorization": sandbox.api_key}
        first: list[requests.Response] = []
        slow = threading.Thread(
            target=lambda: first.append(
                requests.post(f"{sandbox.url}/simple_send/", json=body, headers=headers, timeout=10)
            )
        )
        slow.start()
        poll("the first request to be in flight", lambda: sandbox.state.in_flight == 1, 10)
        second = requests.post(f"{sandbox.url}/simple_send/", json={**body}, headers=headers, timeout=10)
        slow.join(10)
        assert (second.status_code, second.headers.get("Retry-After")) == (429, None)
        assert first[0].status_code == 200
        assert [m["internal_id"] for m in sandbox.accepted] == ["a"]
        assert sandbox.stats()["over_capacity"] == 1
        third = requests.post(f"{sandbox.url}/simple_send/", json={"messages": []}, headers=headers, timeout=10)
        assert third.status_code != 429  # the slot is free again


def test_max_in_flight_can_be_changed_while_running(sb):
    answer = requests.post(f"{sb.url}/_sandbox/settings", json={"max_in_flight": 2}, timeout=5)
    assert answer.json()["max_in_flight"] == 2
    assert sb.state.settings.max_in_flight == 2


def test_status_requests_over_status_rate_limit_get_a_bare_429_without_a_burst():
    """``status_rate_limit``: requests spaced evenly, none sooner (nginx ``limit_req`` without burst)."""
    with CommPeakSandbox(status_rate_limit=0.5) as sandbox:  # one every 2 s: the second at once is too soon
        first = post(sandbox, "/messages_status/", {"message_uuids": ["u"]})
        second = post(sandbox, "/messages_status/", {"message_uuids": ["u"]})
        sent = post(sandbox, "/simple_send/", POSTMAN_BODY)
        assert first.status_code == 200
        assert (second.status_code, second.headers.get("Retry-After")) == (429, None)
        assert sent.status_code == 200  # sends are limited by rate_limit only
        assert sandbox.stats()["status_refused"] == 1


def test_status_rate_limit_can_be_changed_while_running(sb):
    answer = requests.post(f"{sb.url}/_sandbox/settings", json={"status_rate_limit": 0.5}, timeout=5)
    assert answer.json()["status_rate_limit"] == 0.5
    codes = [post(sb, "/messages_status/", {"message_uuids": ["u"]}).status_code for _ in range(2)]
    assert codes == [200, 429]
    requests.post(f"{sb.url}/_sandbox/settings", json={"status_rate_limit": 0}, timeout=5)
    assert post(sb, "/messages_status/", {"message_uuids": ["u"]}).status_code == 200


def test_command_line_limits_reach_the_sandbox(monkeypatch):
    from airflow_provider_commpeak.sandbox import cli

    built: dict = {}

    class Stub:
        def __init__(self, **kwargs):
            built.update(kwargs)
            raise SystemExit(0)  # stop before serving

    monkeypatch.setattr(cli, "CommPeakSandbox", Stub)
    with pytest.raises(SystemExit):
        cli.main(["--status-rate-limit", "5", "--max-in-flight", "2", "--rate-limit", "100"])
    assert (built["status_rate_limit"], built["max_in_flight"], built["rate_limit"]) == (5.0, 2, 100.0)
