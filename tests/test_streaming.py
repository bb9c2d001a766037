"""Messages from files, streamed; per-message reports written to a file; the sensor reading them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import message
from fakes import FakeStateStore, make_context

from airflow_provider_commpeak.exceptions import CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.hooks.report import iter_report
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import read_message_uuids
from airflow_provider_commpeak.utils.validation import DuplicateFinder

pytestmark = pytest.mark.sandbox


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["recipient_phone", "message_content", "sender", "internal_id"]
        )
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_operator_streams_a_jsonl_file_and_writes_the_report(commpeak_sandbox, tmp_path):
    source = write_jsonl(tmp_path / "audience.jsonl", [message(i) for i in range(250)])
    report_path = tmp_path / "report.jsonl"
    context = make_context()
    op = SendSmsOperator(
        task_id="send", messages_path=str(source), report_path=str(report_path), batch_size=100
    )
    summary = op.execute(context)
    assert summary == {
        "report_path": str(report_path),
        "messages": 250,
        "accepted": 250,
        "failed": 0,
        "errors": {},
    }
    assert context["ti"].xcom["report_path"] == str(report_path)
    rows = list(iter_report(report_path))
    assert [r[0] for r in rows] == [f"m{i}" for i in range(250)]
    assert {r[1] for r in rows} == {m["message_uuid"] for m in commpeak_sandbox.accepted}
    assert read_message_uuids(summary) == [r[1] for r in rows]
    assert commpeak_sandbox.requests["/simple_send/"] == 3


def test_csv_source_with_empty_cells_and_generated_ids(commpeak_sandbox, tmp_path):
    rows = [
        {"recipient_phone": "+972 52-426-5292", "message_content": f"hi {i}", "sender": "", "internal_id": ""}
        for i in range(5)
    ]
    source = write_csv(tmp_path / "audience.csv", rows)
    op = SendSmsOperator(
        task_id="send", messages_path=str(source), report_path=str(tmp_path / "r.csv"), sender="CSV"
    )
    assert op.execute(make_context())["accepted"] == 5
    assert {m["sender"] for m in commpeak_sandbox.accepted} == {"CSV"}
    assert all(m["internal_id"].startswith("af-") for m in commpeak_sandbox.accepted)


def test_bad_rows_in_a_file_send_nothing(commpeak_sandbox, tmp_path):
    source = write_jsonl(tmp_path / "a.jsonl", [message(0), "{not json", message(2, phone="12"), message(0)])
    op = SendSmsOperator(task_id="send", messages_path=str(source), report_path=str(tmp_path / "r.jsonl"))
    with pytest.raises(CommPeakValidationError) as info:
        op.execute(make_context())
    problems = info.value.problems
    assert len(problems) == 3
    assert problems[0] == "message 1: line 2 is not valid JSON"
    assert problems[1].startswith("message 2: recipient_phone")
    assert problems[2] == "message 3: internal_id 'm0' duplicates message 0"
    assert commpeak_sandbox.requests == {}


def test_a_big_list_needs_report_path(commpeak_sandbox, tmp_path):
    op = SendSmsOperator(task_id="send", messages=[message(i) for i in range(11)], max_xcom_results=10)
    with pytest.raises(CommPeakValidationError, match="pass report_path"):
        op.execute(make_context())
    assert commpeak_sandbox.requests == {}
    op = SendSmsOperator(
        task_id="send",
        messages=[message(i) for i in range(11)],
        max_xcom_results=10,
        report_path=str(tmp_path / "r.jsonl"),
    )
    assert op.execute(make_context())["accepted"] == 11


def test_retry_of_a_file_send_resends_nothing_accepted(commpeak_sandbox, tmp_path, monkeypatch):
    source = write_jsonl(tmp_path / "a.jsonl", [message(i) for i in range(500)])
    store = FakeStateStore()
    first = SendSmsOperator(
        task_id="send", messages_path=str(source), report_path=str(tmp_path / "r1.jsonl"), max_concurrency=1
    )
    calls = {"n": 0}
    real_post = first.hook.session.post

    def dies_on_the_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise SystemExit("worker killed")
        return real_post(*args, **kwargs)

    monkeypatch.setattr(first.hook.session, "post", dies_on_the_third)
    with pytest.raises(SystemExit):
        first.execute(make_context(store=store))
    assert len(commpeak_sandbox.accepted) == 200

    retry = SendSmsOperator(task_id="send", messages_path=str(source), report_path=str(tmp_path / "r2.jsonl"))
    assert retry.execute(make_context(store=store))["accepted"] == 500
    assert len(commpeak_sandbox.accepted) == 500
    assert max(m["times_accepted"] for m in commpeak_sandbox.accepted) == 1
    assert len(list(iter_report(tmp_path / "r2.jsonl"))) == 500  # the full report, earlier ones included


def test_hook_streams_from_a_list_too(commpeak_sandbox, tmp_path):
    summary = CommPeakHook().send_messages_from(
        [message(i) for i in range(3)], report_path=tmp_path / "r.jsonl"
    )
    assert (summary.messages, summary.accepted) == (3, 3)


def test_duplicate_finder_tells_collisions_from_duplicates():
    finder = DuplicateFinder()
    finder.BITS = 8  # force collisions: every id lands on one of 8 bits
    finder._bits = bytearray(1)
    ids = [f"id{i}" for i in range(50)] + ["id7"]
    for internal_id in ids:
        finder.add(internal_id)
    assert finder.confirm(enumerate(ids)) == ["message 50: internal_id 'id7' duplicates message 7"]


def test_storage_urls_become_object_storage_paths(tmp_path):
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_commpeak.utils.sources import as_storage_path

    assert as_storage_path("/tmp/a.csv") == "/tmp/a.csv"
    assert as_storage_path("file:///tmp/a.csv") == "/tmp/a.csv"
    assert isinstance(as_storage_path("s3://bucket/a.csv"), ObjectStoragePath)


def test_an_object_storage_source_and_report(commpeak_sandbox, tmp_path):
    """Anything with .open() works: here an ObjectStoragePath on the local filesystem."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    source = write_jsonl(tmp_path / "a.jsonl", [message(i) for i in range(3)])
    summary = CommPeakHook().send_messages_from(
        ObjectStoragePath(f"file://{source}"), report_path=ObjectStoragePath(f"file://{tmp_path}/r.jsonl")
    )
    assert summary.accepted == 3
    assert len(list(iter_report(tmp_path / "r.jsonl"))) == 3
