"""What a newcomer's campaign DAG needs to just work: default report location, duplicates, hidden fields."""

from __future__ import annotations

import csv
import json

import pytest

from airflow_provider_commpeak.exceptions import CommPeakSendError
from airflow_provider_commpeak.operators.commpeak import SendSmsOperator, masked_summary
from helpers import SEND_URL, accepted_answer, message, sent_ids
from helpers.fakes import make_context

PHONES = ("972524265292", "972545330008", "447400123456")


@pytest.fixture(autouse=True)
def _conn(commpeak_conn, delays, monkeypatch, tmp_path):
    """requests-mock behind the default connection; temporary files under tmp_path; no ledger option."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    monkeypatch.delenv("AIRFLOW__COMMPEAK__LEDGER_PATH", raising=False)


def audience(tmp_path, name: str = "audience.csv"):
    path = tmp_path / name
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["internal_id", "recipient_phone", "message_content"])
        for i, phone in enumerate(PHONES):
            writer.writerow([f"row-{i}", phone, f"hello {i}"])
    return path


def test_messages_path_alone_sends_and_names_its_default_report(requests_mock, tmp_path, logs):
    requests_mock.post(SEND_URL, json=accepted_answer)
    result = SendSmsOperator(task_id="send", messages_path=str(audience(tmp_path)), sender="S").execute(make_context())
    assert result["accepted"] == 3
    report = result["report_path"]
    assert report.startswith(str(tmp_path / "tmp" / "commpeak-reports"))
    assert report.endswith("/dag/manual__1/send/-1/report.csv")
    assert f"the per-message report goes to {report}" in logs.text
    with open(report) as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["internal_id"], row["line"]) for row in rows] == [("row-0", "2"), ("row-1", "3"), ("row-2", "4")]


def test_the_default_report_sits_beside_the_ledger_when_there_is_one(requests_mock, tmp_path):
    requests_mock.post(SEND_URL, json=accepted_answer)
    ledger = tmp_path / "ledger"
    result = SendSmsOperator(
        task_id="send",
        messages_path=str(audience(tmp_path, "a.jsonl").rename(tmp_path / "a.csv")),
        sender="S",
        ledger_path=str(ledger),
    ).execute(make_context())
    assert result["report_path"] == str(ledger / "dag" / "manual__1" / "send" / "-1" / "report.csv")


def test_a_jsonl_audience_gets_a_jsonl_report(requests_mock, tmp_path):
    requests_mock.post(SEND_URL, json=accepted_answer)
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(message(i, phone=p)) + "\n" for i, p in enumerate(PHONES)))
    result = SendSmsOperator(task_id="send", messages_path=str(path)).execute(make_context())
    assert result["report_path"].endswith("report.jsonl")
    with open(result["report_path"]) as handle:
        lines = handle.read().splitlines()
    assert [json.loads(line)["internal_id"] for line in lines] == ["m0", "m1", "m2"]


def test_a_dry_run_of_a_file_needs_no_report_and_writes_none(requests_mock, tmp_path):
    result = SendSmsOperator(task_id="send", messages_path=str(audience(tmp_path)), sender="S", dry_run=True).execute(
        make_context()
    )
    assert result["messages"] == 3
    assert requests_mock.call_count == 0
    assert not (tmp_path / "tmp" / "commpeak-reports").exists()


def test_the_same_number_written_two_ways_is_sent_once(requests_mock, logs):
    requests_mock.post(SEND_URL, json=accepted_answer)
    op = SendSmsOperator(
        task_id="send",
        recipients=["972524265292", "052-426-5292", "+972 54-533-0008"],
        message_content="Your code is 1234",
        sender="S",
        default_region="IL",
    )
    result = op.execute(make_context())
    assert [len(batch) for batch in sent_ids(requests_mock)] == [2]
    errors = [r["error"] for r in result["results"].values()]
    assert errors == [None, "DUPLICATE", None]
    assert (result["accepted"], result["failed"]) == (2, 0)  # a DUPLICATE is not a failure
    assert "message 1 repeats message 0" in logs.text
    assert "5292" not in logs.text.split("repeats")[0][-200:]  # positions, never the number


def test_allow_duplicates_sends_both_on_purpose(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    result = SendSmsOperator(
        task_id="send",
        recipients=["972524265292", "052-426-5292"],
        message_content="x",
        sender="S",
        default_region="IL",
        allow_duplicates=True,
    ).execute(make_context())
    assert result["accepted"] == 2
    assert sum(len(batch) for batch in sent_ids(requests_mock)) == 2


def test_other_text_or_given_ids_do_not_hide_a_duplicate(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    messages = [
        message(0, message_content="a"),
        message(1, message_content="b"),  # same number, other text: sent
        message(2, phone="+972-52-426-5292", message_content="a"),  # same as m0 in another form: not sent
    ]
    result = SendSmsOperator(task_id="send", messages=messages).execute(make_context())
    assert {k: v["error"] for k, v in result["results"].items()} == {"m0": None, "m1": None, "m2": "DUPLICATE"}


def test_duplicates_do_not_count_against_allowed_failures_but_failures_do(requests_mock):
    requests_mock.post(
        SEND_URL,
        json={
            "status": True,
            "task_id": "t",
            "messages": [{"internal_id": "m0", "message_uuid": None, "error": "INVALID"}],
        },
    )
    with pytest.raises(CommPeakSendError, match="1 of 2 message"):
        SendSmsOperator(task_id="send", messages=[message(0), message(1, message_content="test message 0")]).execute(
            make_context()
        )


def render(op: SendSmsOperator, **context_extra) -> None:
    import jinja2

    op.render_template_fields({"ds": "2026-12-01", **context_extra}, jinja2.Environment())


def test_rendered_fields_hold_no_number_or_text_and_the_send_still_has_them(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    op = SendSmsOperator(
        task_id="send", recipients=list(PHONES), message_content="Secret code for {{ ds }}", sender="S"
    )
    render(op)
    stored = json.dumps({name: getattr(op, name) for name in op.template_fields}, default=str)
    for phone in PHONES:
        assert phone not in stored
    assert "Secret" not in stored
    assert op.recipients == "<hidden: 3 number(s); 9725****292, 9725****008, 4474****456>"
    assert op.message_content == "<hidden: a text of 26 character(s)>"
    op.execute(make_context())
    sent = requests_mock.request_history[0].json()["messages"]
    assert [m["recipient_phone"] for m in sent] == list(PHONES)
    assert sent[0]["message_content"] == "Secret code for 2026-12-01"


def test_a_messages_list_is_hidden_too_and_a_second_render_keeps_the_originals(requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    messages = [message(i, phone=p, message_content="same") for i, p in enumerate(PHONES * 2)]
    op = SendSmsOperator(task_id="send", messages=messages)
    render(op)
    render(op)
    assert op.messages == "<hidden: 6 message(s); 9725****292, 9725****008, 4474****456, ...>"
    result = op.execute(make_context())
    assert result["accepted"] == 3  # the second half repeats the first: DUPLICATE


def test_masked_summary_never_iterates_a_one_shot_iterable():
    numbers = iter(PHONES)
    assert masked_summary("recipients", numbers) == "<hidden>"
    assert next(numbers) == PHONES[0]
