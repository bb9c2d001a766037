"""``commpeak-sandbox check``: a live contract check, run here against the sandbox (no network beyond 127.0.0.1)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_commpeak.contract import ContractCheck
from airflow_provider_commpeak.sandbox.cli import main

pytestmark = pytest.mark.sandbox


def test_the_sandbox_passes_every_check_and_nothing_is_sent(commpeak_sandbox, monkeypatch, capsys):
    monkeypatch.setenv("COMMPEAK_API_KEY", commpeak_sandbox.api_key)
    assert main(["check", "--url", commpeak_sandbox.url]) == 0
    out = capsys.readouterr().out
    assert "4 of 4 check(s) passed" in out
    assert "MISMATCH" not in out
    assert commpeak_sandbox.accepted == []  # no SMS without --to
    assert commpeak_sandbox.api_key not in out


def test_with_to_one_sms_is_sent_and_checked(commpeak_sandbox, monkeypatch, capsys):
    monkeypatch.setenv("COMMPEAK_API_KEY", commpeak_sandbox.api_key)
    assert main(["check", "--url", commpeak_sandbox.url, "--to", "972524265292"]) == 0
    out = capsys.readouterr().out
    assert "5 of 5 check(s) passed" in out
    assert "9725****292" in out
    assert "972524265292" not in out
    [sent] = commpeak_sandbox.accepted
    assert sent["recipient_phone"] == "972524265292"


def test_the_key_can_come_from_a_connection(commpeak_sandbox, monkeypatch, capsys):
    monkeypatch.delenv("COMMPEAK_API_KEY", raising=False)
    assert main(["check", "--conn-id", "commpeak_default"]) == 0  # the fixture's connection: URL and key
    assert "4 of 4 check(s) passed" in capsys.readouterr().out


def test_without_a_key_it_says_how_to_give_one(monkeypatch, capsys):
    monkeypatch.delenv("COMMPEAK_API_KEY", raising=False)
    assert main(["check", "--url", "http://127.0.0.1:9"]) == 2
    assert "set COMMPEAK_API_KEY or pass --conn-id" in capsys.readouterr().err


def test_an_answer_of_another_shape_is_a_mismatch(commpeak_sandbox, requests_mock):
    """An API that changed: the status answer is no shape the provider reads; the send refusal is a 200."""
    requests_mock.post(f"{commpeak_sandbox.url}/messages_status/", json={"result": "ok", "items": 3})
    requests_mock.post(f"{commpeak_sandbox.url}/simple_send/", json={"status": False})
    results = ContractCheck(commpeak_sandbox.url, "k").run()
    verdicts = {r.name.split(":")[0]: r.ok for r in results}
    assert verdicts == {
        "messages_status with the key, for a uuid no message has": False,
        "messages_status without a key": False,
        "simple_send without a key": False,
        "simple_send with a malformed body": False,
    }
    assert "no known shape" in results[0].seen
    assert json.dumps([r.seen for r in results]).count("HTTP 200") >= 3


def test_an_unreachable_endpoint_is_a_mismatch_not_a_crash():
    results = ContractCheck("http://127.0.0.1:9", "k").run()
    assert not any(r.ok for r in results)
    assert all("no answer" in r.seen or "could not" in r.seen or "unreachable" in r.seen.lower() for r in results)
