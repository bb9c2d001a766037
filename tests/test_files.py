"""Messages from files (CSV, JSON Lines, ObjectStoragePath) and reports written to files."""

from __future__ import annotations

import codecs
import csv
import json
from pathlib import Path

import pytest
from requests_mock import ANY

from airflow_provider_commpeak._engine.report import iter_report
from airflow_provider_commpeak._input.records import MAX_LINE_BYTES, read_file_records
from airflow_provider_commpeak.exceptions import CommPeakValidationError
from airflow_provider_commpeak.hooks.commpeak import CommPeakHook
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from airflow_provider_commpeak.sensors.commpeak import read_message_uuids
from helpers import message
from helpers.fakes import FakeStateStore, make_context


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["recipient_phone", "message_content", "sender", "internal_id"])
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def no_request(commpeak_conn, requests_mock):
    requests_mock.register_uri(ANY, ANY, status_code=599)
    return requests_mock


def problems(no_request, source, **kwargs) -> list[str]:
    kwargs.setdefault("id_namespace", "af-0000000000000000")
    with pytest.raises(CommPeakValidationError) as info:
        CommPeakHook().send_messages(source, report_path=kwargs.pop("report_path", None), **kwargs)
    assert no_request.call_count == 0, "a request was sent despite invalid input"
    return info.value.problems


# -- strict CSV, BOMs, encodings ---------------------------------------------------------------------

OTP_ROWS = (
    "recipient_phone,message_content,sender\n"
    '+447700900001,"Your code is 1111,S\n'
    "+447700900002,Your code is 2222,S\n"
    "+447700900003,Your code is 3333,S\n"
    '+447700900004,Your code is 4444",S\n'
    "+447700900005,Your code is 5555,S\n"
)


def test_an_unclosed_quote_that_swallows_rows_is_refused(no_request, tmp_path):
    path = tmp_path / "otp.csv"
    path.write_text(OTP_ROWS)
    [problem] = problems(no_request, path)
    assert problem.startswith("lines 2-5: a quoted cell spans lines that look like rows")
    assert "2222" not in problem
    assert "7700900002" not in problem


def test_a_quote_left_open_to_the_end_is_refused(no_request, tmp_path):
    path = tmp_path / "otp.csv"
    path.write_text(OTP_ROWS.replace('4444",S', "4444,S"))
    [problem] = problems(no_request, path)
    assert problem.startswith("line 2: not valid CSV (unexpected end of data)")


def test_the_end_of_a_file_inside_a_quote_says_so(no_request, tmp_path):
    path = tmp_path / "otp.csv"
    path.write_text(OTP_ROWS.replace('4444",S', "4444,S"))
    [problem] = problems(no_request, path)
    assert problem.endswith("a quote is left open (the file ends inside a quoted cell)")


def test_a_quote_inside_an_unquoted_cell_is_refused_with_its_line_and_cell(no_request, tmp_path):
    """The csv module would send ``he said "hi"`` with its quotes as text, silently."""
    path = tmp_path / "quotes.csv"
    path.write_text('recipient_phone,message_content\n447700900001,fine\n447700900002,he said "hi"\n')
    [problem] = problems(no_request, path, default_sender="S")
    assert problem.startswith("line 3: cell 2 holds a quote but is not quoted")
    assert "hi" not in problem.replace('""hi""', "")  # the hint's example, never the cell


def test_a_closing_quote_followed_by_text_gets_its_own_hint(no_request, tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_text('recipient_phone,message_content\n447700900001,"he said" hi\n')
    [problem] = problems(no_request, path)
    assert problem.startswith("line 2: not valid CSV (',' expected after '\"')")
    assert "a quoted cell is followed by more text before the next comma" in problem
    assert "left open" not in problem


def test_quotes_written_the_csv_way_are_sent_as_text(commpeak_conn, requests_mock, tmp_path):
    from helpers import SEND_URL, accepted_answer

    requests_mock.post(SEND_URL, json=accepted_answer)
    path = tmp_path / "quotes.csv"
    path.write_text('recipient_phone,message_content\n447700900001,"he said ""hi"", twice"\n')
    CommPeakHook().send_messages(path, id_namespace="af-0", default_sender="S")
    assert requests_mock.last_request.json()["messages"][0]["message_content"] == 'he said "hi", twice'


def test_a_ragged_row_names_its_line(no_request, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("recipient_phone,message_content\n447700900001,hi\n447700900002,hi,extra\n")
    assert problems(no_request, path, default_sender="S") == ["line 3: 3 cell(s) where the header has 2"]


def test_a_csv_without_a_header_never_echoes_its_first_row(no_request, tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("+447700900001,Your code is 1111\n")
    [problem] = problems(no_request, path)
    assert problem.startswith("line 1: the header names none of the columns")
    assert "1111" not in problem
    assert "900001" not in problem


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_utf8_byte_order_mark_is_accepted(commpeak_conn, requests_mock, tmp_path, suffix):
    from helpers import accepted_answer

    requests_mock.post("https://sendsms.commpeak.com/simple_send/", json=accepted_answer)
    path = tmp_path / f"excel{suffix}"
    if suffix == ".csv":
        write_csv(path, [message(0)])
    else:
        write_jsonl(path, [message(0)])
    path.write_bytes(codecs.BOM_UTF8 + path.read_bytes())
    assert CommPeakHook().send_messages(path, report_path=tmp_path / f"r{suffix}").accepted == 1


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_file_that_is_not_utf8_names_the_line(no_request, tmp_path, suffix):
    path = tmp_path / f"latin1{suffix}"
    if suffix == ".csv":
        path.write_bytes("recipient_phone,message_content,sender\n447700900001,Café 4711,S\n".encode("latin-1"))
        expected = "line 2 is not UTF-8 text"
    else:
        path.write_bytes(
            json.dumps(message(0, message_content="Café 4711"), ensure_ascii=False).encode("latin-1") + b"\n"
        )
        expected = "line 1 is not UTF-8 text"
    [problem] = problems(no_request, path)
    assert problem.startswith(expected)
    assert "4711" not in problem


def test_an_overlong_line_is_refused(no_request, tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"x" * (MAX_LINE_BYTES + 10) + b"\n" + json.dumps(message(0)).encode() + b"\n")
    assert problems(no_request, path) == ["line 1 is longer than 1024 KiB"]


def test_a_jsonl_line_nested_too_deep_is_a_problem_with_its_line(no_request, tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(message(0)) + "\n" + "[" * 200_000 + "]" * 200_000 + "\n")
    assert problems(no_request, path) == ["line 2 is JSON nested too deep to read"]


def test_jsonl_lines_that_are_not_objects(no_request, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [message(0), "not json", "[1, 2]", message(3)])
    assert problems(no_request, path) == ["line 2 is not valid JSON", "line 3 is not a JSON object"]


# -- where the report goes ------------------------------------------------------------------------------


def test_a_report_path_that_is_the_audience_is_refused_and_the_audience_kept(no_request, tmp_path):
    source = write_jsonl(tmp_path / "audience.jsonl", [message(0)])
    before = source.read_bytes()
    [problem] = problems(no_request, source, report_path=tmp_path / "." / "audience.jsonl")
    assert "destroy the audience" in problem
    assert source.read_bytes() == before


def test_a_report_path_over_an_unrelated_file_is_refused(no_request, tmp_path):
    other = tmp_path / "precious.csv"
    other.write_text("name,salary\nana,1\n")
    [problem] = problems(no_request, [message(0)], report_path=other)
    assert "not a CommPeak report" in problem
    assert other.read_text() == "name,salary\nana,1\n"


# -- against the sandbox -----------------------------------------------------------------------------


@pytest.mark.sandbox
def test_operator_sends_a_jsonl_file_and_writes_the_report(sandbox, tmp_path):
    source = write_jsonl(tmp_path / "audience.jsonl", [message(i) for i in range(250)])
    report_path = tmp_path / "report.jsonl"
    context = make_context()
    op = SendSmsOperator(task_id="send", messages_path=str(source), report_path=str(report_path), batch_size=100)
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
    assert sorted(r.internal_id for r in rows) == sorted(f"m{i}" for i in range(250))
    assert {r.message_uuid for r in rows} == {m["message_uuid"] for m in sandbox.accepted}
    assert sorted(read_message_uuids(summary)) == sorted(r.message_uuid for r in rows)
    assert sandbox.requests["/simple_send/"] == 3


@pytest.mark.sandbox
def test_csv_with_empty_cells_national_numbers_and_generated_ids(sandbox, tmp_path):
    source = write_csv(
        tmp_path / "a.csv",
        [
            {"recipient_phone": "052-426-5292", "message_content": "hi", "sender": "", "internal_id": ""},
            {
                "recipient_phone": "+972 54-533-0008",
                "message_content": "hi",
                "sender": "S2",
                "internal_id": "x1",
            },
        ],
    )
    op = SendSmsOperator(
        task_id="send",
        messages_path=str(source),
        report_path=str(tmp_path / "r.csv"),
        sender="S1",
        default_region="IL",
    )
    assert op.execute(make_context())["accepted"] == 2
    sent = sorted((m["recipient_phone"], m["sender"], m["internal_id"][:3]) for m in sandbox.accepted)
    assert sent == [("972524265292", "S1", "af-"), ("972545330008", "S2", "x1")]


@pytest.mark.sandbox
def test_bad_rows_in_a_file_send_nothing(sandbox, tmp_path):
    source = write_jsonl(tmp_path / "a.jsonl", [message(0), message(1, phone="12"), "{not json", message(0)])
    op = SendSmsOperator(task_id="send", messages_path=str(source), report_path=str(tmp_path / "r.jsonl"))
    with pytest.raises(CommPeakValidationError) as info:
        op.execute(make_context())
    assert info.value.problems == [
        "line 2: recipient_phone '****' has 2 digits; an international number has 7-15",
        "line 3 is not valid JSON",
        "line 4: internal_id 'm0' duplicates line 1",
    ]
    assert sandbox.requests == {}


@pytest.mark.sandbox
def test_a_big_list_needs_report_path(sandbox, tmp_path):
    op = SendSmsOperator(task_id="send", messages=[message(i) for i in range(11)], max_xcom_results=10)
    with pytest.raises(CommPeakValidationError, match="pass report_path"):
        op.execute(make_context())
    assert sandbox.requests == {}
    op = SendSmsOperator(
        task_id="send",
        messages=[message(i) for i in range(11)],
        max_xcom_results=10,
        report_path=str(tmp_path / "r.jsonl"),
    )
    assert op.execute(make_context())["accepted"] == 11


@pytest.mark.sandbox
def test_the_source_is_read_once_and_a_change_after_validation_is_not_sent(sandbox, tmp_path, monkeypatch):
    from airflow_provider_commpeak._input import records

    source = write_jsonl(tmp_path / "a.jsonl", [message(i) for i in range(300)])
    opened = []
    real = records.read_file_records

    def counting(path, *args, **kwargs):
        opened.append(str(path))
        for record in real(path, *args, **kwargs):
            yield record
            if record.position == 299:
                source.write_text(json.dumps(message(999, phone="12")) + "\n")  # replaced mid-run

    monkeypatch.setattr(records, "read_file_records", counting)
    summary = CommPeakHook().send_messages(source, report_path=tmp_path / "r.jsonl")
    assert opened == [str(source)]
    assert summary.accepted == 300


@pytest.mark.sandbox
def test_retry_of_a_file_send_resends_nothing_that_may_have_been_accepted(sandbox, tmp_path, monkeypatch):
    """Try 1 dies right after CommPeak accepted its third batch, before the answer was recorded."""
    source = write_jsonl(tmp_path / "a.jsonl", [message(i) for i in range(500)])
    store = FakeStateStore()
    first = SendSmsOperator(
        task_id="send", messages_path=str(source), report_path=str(tmp_path / "r1.jsonl"), max_concurrency=1
    )
    calls = {"n": 0}
    real_post = first.hook.session.post

    def dies_after_the_third(*args, **kwargs):
        calls["n"] += 1
        answer = real_post(*args, **kwargs)
        if calls["n"] == 3:
            raise SystemExit("worker killed")
        return answer

    monkeypatch.setattr(first.hook.session, "post", dies_after_the_third)
    with pytest.raises(SystemExit):
        first.execute(make_context(store=store))
    assert len(sandbox.accepted) == 300

    retry = SendSmsOperator(
        task_id="send",
        messages_path=str(source),
        report_path=str(tmp_path / "r1.jsonl"),
        allowed_failures=100,
    )
    result = retry.execute(make_context(store=store))
    assert (result["accepted"], result["errors"]) == (400, {"UNCONFIRMED": 100})
    assert len(sandbox.accepted) == 500
    assert max(m["times_accepted"] for m in sandbox.accepted) == 1
    assert len(list(iter_report(tmp_path / "r1.jsonl"))) == 500  # the full report, earlier ones included


@pytest.mark.sandbox
def test_an_object_storage_source_and_report(sandbox, tmp_path):
    """Anything with .open() works: here an ObjectStoragePath on the local filesystem."""
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    source = write_jsonl(tmp_path / "a.jsonl", [message(i) for i in range(3)])
    summary = CommPeakHook().send_messages(
        ObjectStoragePath(f"file://{source}"), report_path=ObjectStoragePath(f"file://{tmp_path}/r.jsonl")
    )
    assert (summary.accepted, summary.results, summary.report_path) == (3, None, f"file://{tmp_path}/r.jsonl")
    assert len(list(iter_report(tmp_path / "r.jsonl"))) == 3
    with pytest.warns(DeprecationWarning, match="send_messages_from"):
        CommPeakHook().send_messages_from(
            ObjectStoragePath(f"file://{source}"), report_path=ObjectStoragePath(f"file://{tmp_path}/r2.jsonl")
        )


def test_storage_urls_become_object_storage_paths():
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_commpeak._input.records import as_storage_path

    assert as_storage_path("/tmp/a.csv") == "/tmp/a.csv"
    assert as_storage_path("file:///tmp/a.csv") == "/tmp/a.csv"
    assert isinstance(as_storage_path("s3://bucket/a.csv"), ObjectStoragePath)


@pytest.mark.sandbox
def test_a_relative_report_path_is_published_absolute_for_a_reader_elsewhere(sandbox, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    op = SendSmsOperator(task_id="send", messages=[message(i) for i in range(3)], report_path="reports/r.csv")
    (tmp_path / "reports").mkdir()
    summary = op.execute(make_context())
    assert summary["report_path"] == str(tmp_path / "reports" / "r.csv")
    monkeypatch.chdir("/")  # the sensor on another worker, or the triggerer
    assert len(read_message_uuids(summary)) == 3


@pytest.mark.sandbox
def test_a_report_path_in_a_missing_folder_gets_its_folders(sandbox, tmp_path):
    report = tmp_path / "campaigns" / "spring" / "report.csv"
    summary = SendSmsOperator(task_id="send", messages=[message(i) for i in range(2)], report_path=str(report)).execute(
        make_context()
    )
    assert (summary["accepted"], summary["report_path"]) == (2, str(report))
    assert len(read_message_uuids(summary)) == 2


def test_each_format_has_a_reader_and_a_writer_and_any_other_is_refused(tmp_path):
    from airflow_provider_commpeak._engine.report import STATUS_COLUMNS, write_status_report
    from airflow_provider_commpeak._input.records import FILE_FORMATS, file_format

    assert set(FILE_FORMATS) == {"csv", "jsonl"}
    with pytest.raises(ValueError, match="no reader or writer for the file format 'parquet'"):
        file_format("parquet")
    for suffix in ("csv", "jsonl"):
        path = tmp_path / f"statuses.{suffix}"
        rows_in = [{"message_uuid": "u1", "status": "delivered"}, {"message_uuid": "u2", "status": "sent"}]
        assert write_status_report(path, iter(rows_in)) == 2
        rows = [r.fields for r in read_file_records(path, columns=STATUS_COLUMNS, required=("message_uuid",))]
        assert [(r["message_uuid"], r["status"]) for r in rows] == [("u1", "delivered"), ("u2", "sent")]
