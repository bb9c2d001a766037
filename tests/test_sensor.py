from __future__ import annotations

import csv
import json
import time

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_provider_commpeak.exceptions import (
    CommPeakApiError,
    CommPeakDeliveryError,
    CommPeakValidationError,
)
from airflow_provider_commpeak.sensors.commpeak import DEFERRAL_TIMEOUT_GRACE, SmsStatusSensor, read_message_uuids
from airflow_provider_commpeak.triggers.commpeak import SmsStatusTrigger
from helpers import STATUS_URL
from helpers.fakes import make_context


@pytest.fixture(autouse=True)
def _conn(commpeak_conn, delays):
    """Every test here talks to requests-mock through the default connection."""


def answer_with(statuses: dict[str, str]):
    """A requests-mock callback answering the asked uuids from ``statuses`` (others left out)."""

    def callback(request, context):
        asked = request.json()["message_uuids"]
        return {"messages": [{"message_uuid": u, "status": statuses[u]} for u in asked if u in statuses]}

    return callback


def sensor(**kwargs) -> SmsStatusSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("message_uuids", ["u1", "u2", "u3"])
    kwargs.setdefault("deferrable", False)
    return SmsStatusSensor(**kwargs)


def asked(requests_mock) -> list[list[str]]:
    return [r.json()["message_uuids"] for r in requests_mock.request_history]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["u1", "u2"], ["u1", "u2"]),
        (("u1", "u1", "u2"), ["u1", "u2"]),
        ({"message_uuids": ["u1"], "accepted": 1}, ["u1"]),
        ([], []),
    ],
)
def test_read_message_uuids(value, expected):
    assert read_message_uuids(value) == expected


@pytest.mark.parametrize("value", ["u1", "/no/such/report.jsonl", None, {"results": {}}, [1, 2], [""], 42])
def test_read_message_uuids_refuses(value):
    with pytest.raises(CommPeakValidationError):
        read_message_uuids(value)


def test_polls_only_pending_messages_and_returns_the_shape(requests_mock):
    statuses = {"u1": "delivered", "u2": "sent", "u3": "sent"}
    requests_mock.post(STATUS_URL, json=answer_with(statuses))
    s = sensor(allowed_failures=1)
    assert s.poke(make_context()).is_done is False
    statuses.update(u2="DELIVERED")
    assert s.poke(make_context()).is_done is False
    statuses.update(u3="undelivered")
    result = s.poke(make_context())
    assert asked(requests_mock) == [["u1", "u2", "u3"], ["u2", "u3"], ["u3"]]
    assert result.is_done
    assert result.xcom_value == {
        "statuses": {"u1": "delivered", "u2": "delivered", "u3": "undelivered"},
        "succeeded": 2,
        "failed": 1,
    }


def test_done_when_all_final_within_the_allowance(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "delivered", "u2": "rejected", "u3": "delivered"}))
    result = sensor(allowed_failures=1).poke(make_context())
    assert result.is_done
    assert result.xcom_value == {
        "statuses": {"u1": "delivered", "u2": "rejected", "u3": "delivered"},
        "succeeded": 2,
        "failed": 1,
    }


def test_fails_fast_once_failures_exceed_the_allowance(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "undelivered", "u2": "sent"}))
    with pytest.raises(CommPeakDeliveryError, match="1 of 3 message\\(s\\) failed delivery") as info:
        sensor().poke(make_context())
    assert info.value.statuses == {"u1": "undelivered", "u2": "sent", "u3": "unknown"}


def test_soft_fail_skips_instead(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "no_routes"}))
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).poke(make_context())


def test_custom_statuses_are_case_insensitive(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "Sent"}))
    result = sensor(message_uuids=["u1"], success_statuses=["SENT"]).poke(make_context())
    assert result.is_done
    assert result.xcom_value["succeeded"] == 1


def test_chunked_status_requests(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({}))
    sensor(message_uuids=[f"u{i}" for i in range(12)], status_batch_size=5).poke(make_context())
    assert [len(a) for a in asked(requests_mock)] == [5, 5, 2]


def test_accepts_the_whole_send_report(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u9": "delivered"}))
    report = {"message_uuids": ["u9"], "results": {}, "accepted": 1, "failed": 0, "task_ids": []}
    assert sensor(message_uuids=report).poke(make_context()).is_done


def test_deferrable_pokes_once_then_defers_with_only_the_pending_uuids(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "delivered", "u2": "sent"}))
    s = sensor(deferrable=True, timeout=600, poke_interval=7, allowed_failures=1)
    with pytest.raises(TaskDeferred) as info:
        s.execute(make_context())
    trigger = info.value.trigger
    assert isinstance(trigger, SmsStatusTrigger)
    assert info.value.method_name == "execute_complete"
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_commpeak.triggers.commpeak.SmsStatusTrigger"
    assert sorted(kwargs["message_uuids"]) == ["u2", "u3"]
    assert kwargs["poll_interval"] == 7
    assert kwargs["allowed_failures"] == 1
    assert kwargs["end_time"] == pytest.approx(time.time() + 600, abs=60)
    # Airflow's deferral timeout is a backstop after the trigger's own deadline, whose event names the pending
    assert info.value.timeout.total_seconds() == 600 + DEFERRAL_TIMEOUT_GRACE.total_seconds()


def test_deferrable_with_a_report_file_passes_only_its_path(requests_mock, tmp_path):
    path = write_report(tmp_path / "report.jsonl", 100_000)
    requests_mock.post(STATUS_URL, json={"messages": []})
    s = sensor(message_uuids={"report_path": str(path), "accepted": 100_000}, deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as info:
        s.execute(make_context())
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["report_path"] == str(path)
    assert "message_uuids" not in kwargs
    assert len(json.dumps(kwargs)) < 1024


def test_deferrable_returns_at_once_when_already_done(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "delivered"}))
    assert sensor(message_uuids=["u1"], deferrable=True).execute(make_context())["succeeded"] == 1


def event(status: str, counts: dict[str, int], message: str = "m", total: int = 3) -> dict:
    finals = {"delivered", "rejected", "undelivered"}
    return {
        "status": status,
        "message": message,
        "total": total,
        "counts": counts,
        "succeeded": counts.get("delivered", 0),
        "failed": sum(n for s, n in counts.items() if s in finals - {"delivered"}),
        "pending": sum(n for s, n in counts.items() if s not in finals),
        "failed_uuids": [],
    }


def test_execute_complete_reads_small_sets_once_for_xcom(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "delivered", "u2": "delivered", "u3": "rejected"}))
    s = sensor(allowed_failures=1)
    assert s.execute_complete(make_context(), event("success", {"delivered": 2, "rejected": 1})) == {
        "statuses": {"u1": "delivered", "u2": "delivered", "u3": "rejected"},
        "succeeded": 2,
        "failed": 1,
    }
    assert requests_mock.call_count == 1


def test_execute_complete_maps_failure_timeout_and_error(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "rejected", "u2": "sent", "u3": "sent"}))
    s = sensor()
    with pytest.raises(CommPeakDeliveryError, match="1 of 3 message"):
        s.execute_complete(make_context(), event("failure", {"rejected": 1, "sent": 2}))
    with pytest.raises(AirflowSensorTimeout, match="2 of 3 message\\(s\\) still pending"):
        s.execute_complete(make_context(), event("timeout", {"delivered": 1, "sent": 2}, "Deadline passed"))
    with pytest.raises(CommPeakApiError, match="5 status polls"):
        s.execute_complete(make_context(), {"status": "error", "message": "5 status polls in a row failed"})


def test_a_timeout_counts_every_message_not_only_those_deferred(requests_mock):
    """The sensor deferred with u2 only (u1 was already delivered): the error still says 1 of 2."""
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "delivered", "u2": "sent"}))
    s = sensor(message_uuids=["u1", "u2"])
    with pytest.raises(AirflowSensorTimeout, match=r"^Deadline passed: 1 of 2 message\(s\) still pending"):
        s.execute_complete(make_context(), event("timeout", {"sent": 1}, "Deadline passed", total=1))


def test_a_timeout_says_what_the_trigger_knew_when_the_last_read_fails(requests_mock):
    requests_mock.post(STATUS_URL, status_code=401)
    s = sensor(message_uuids=["u1", "u2"])
    with pytest.raises(AirflowSensorTimeout, match=r"1 of 1 message\(s\) still pending"):
        s.execute_complete(make_context(), event("timeout", {"sent": 1}, "Deadline passed", total=1))


def test_execute_complete_under_soft_fail_skips(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "rejected"}))
    s = sensor(soft_fail=True)
    with pytest.raises(AirflowSkipException):
        s.execute_complete(make_context(), event("failure", {"rejected": 1, "unknown": 2}))
    with pytest.raises(AirflowSkipException):
        s.execute_complete(make_context(), event("timeout", {"sent": 3}))


def write_report(path, n: int, failed_every: int = 0):
    """A send report of ``n`` accepted messages with real-looking uuids."""
    import uuid as uuid_module

    with path.open("w") as handle:
        for i in range(n):
            handle.write(
                json.dumps({"internal_id": f"m{i}", "message_uuid": str(uuid_module.UUID(int=i + 1)), "error": None})
                + "\n"
            )
    return path


def test_xcom_stays_bounded_at_100k_messages_and_statuses_go_to_a_file(requests_mock, tmp_path):
    import uuid as uuid_module

    path = write_report(tmp_path / "report.jsonl", 100_000)
    failed = {str(uuid_module.UUID(int=i + 1)) for i in range(0, 100_000, 1000)}

    def answer(request, context):
        asked = request.json()["message_uuids"]
        return {
            "messages": [{"message_uuid": u, "status": "undelivered" if u in failed else "delivered"} for u in asked]
        }

    requests_mock.post(STATUS_URL, json=answer)
    s = sensor(
        message_uuids=str(path),
        allowed_failures=0.01,
        status_batch_size=5000,
        status_report_path=str(tmp_path / "statuses.csv"),
    )
    result = s.poke(make_context())
    assert result.is_done
    xcom = result.xcom_value
    assert len(json.dumps(xcom)) < 64 * 1024
    assert (xcom["succeeded"], xcom["failed"], xcom["pending"]) == (99_900, 100, 0)
    assert xcom["counts"] == {"delivered": 99_900, "undelivered": 100}
    assert set(xcom["failed_uuids"]) == failed
    lines = (tmp_path / "statuses.csv").read_text().splitlines()
    assert lines[0] == "message_uuid,status,internal_id,line,send_error"
    assert len(lines) == 100_001


def test_each_poke_logs_one_line_of_counts_and_the_end_a_verdict(requests_mock, logs):
    statuses = {"u1": "delivered", "u2": "sent", "u3": "sent"}
    requests_mock.post(STATUS_URL, json=answer_with(statuses))
    s = sensor(allowed_failures=1)
    s.poke(make_context())
    statuses.update(u2="delivered", u3="undelivered")
    s.poke(make_context())
    assert "Waiting for delivery: 1 delivered, 2 pending (2 sent) of 3" in logs.text
    assert "Delivery: 2 delivered, 1 undelivered, 0 pending of 3; 1 failed, 1 allowed" in logs.text


def test_a_string_status_is_one_status_not_its_letters(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "delivered"}))
    result = sensor(message_uuids=["u1"], success_statuses="delivered", failure_statuses="rejected").poke(
        make_context()
    )
    assert result.is_done
    assert result.xcom_value["succeeded"] == 1


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"status_batch_size": 0}, "status_batch_size"),
        ({"status_batch_size": "500"}, "status_batch_size"),
        ({"max_consecutive_errors": 0}, "max_consecutive_errors"),
        ({"max_xcom_results": -1}, "max_xcom_results"),
        ({"allowed_failures": 2.5}, "fraction"),
    ],
)
def test_numeric_arguments_are_checked_when_the_sensor_is_made(kwargs, problem):
    with pytest.raises(CommPeakValidationError, match=problem):
        sensor(**kwargs)


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_reads_accepted_uuids_from_a_report_file(tmp_path, suffix):
    from airflow_provider_commpeak._engine.report import FileSink, MessageResult

    path = tmp_path / f"report.{suffix}"
    sink = FileSink(path)
    for seq, result in enumerate(
        [
            MessageResult("m0", "u0", None),
            MessageResult("m1", None, "RATE_LIMIT"),
            MessageResult("m2", "u2", None),
        ]
    ):
        sink.add(seq, result)
    sink.close()
    assert read_message_uuids(str(path)) == ["u0", "u2"]
    assert read_message_uuids({"report_path": str(path), "accepted": 2}) == ["u0", "u2"]


# -- what the second outside probe found ---------------------------------------------------------


def test_a_deferred_wait_above_max_xcom_results_keeps_the_failures_its_first_poke_saw(requests_mock):
    """2 of 10 failed, allowed_failures=1: the first poke saw one failure, the trigger the other."""
    uuids = [f"u{i}" for i in range(10)]
    requests_mock.post(STATUS_URL, json=answer_with({"u0": "rejected", **{u: "delivered" for u in uuids[2:]}}))
    s = sensor(message_uuids=uuids, deferrable=True, timeout=60, allowed_failures=1, max_xcom_results=5)
    with pytest.raises(TaskDeferred) as info:
        s.execute(make_context())
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["message_uuids"] == ["u1"]
    assert kwargs["settled_counts"] == {"rejected": 1, "delivered": 8}
    trigger = SmsStatusTrigger(**json.loads(json.dumps(kwargs)))
    tracker = asyncio_run(trigger._tracker())
    tracker.update({"u1": "undelivered"})
    assert (tracker.total, tracker.snapshot.failed) == (10, 2)
    ended = event("failure", {"rejected": 1, "undelivered": 1, "delivered": 8}, total=10)
    with pytest.raises(CommPeakDeliveryError, match="2 of 10"):
        sensor(message_uuids=uuids, allowed_failures=1, max_xcom_results=5).execute_complete(make_context(), ended)


def asyncio_run(coroutine):
    import asyncio

    return asyncio.run(coroutine)


def test_a_wait_the_trigger_saw_delivered_succeeds_though_the_last_read_fails(requests_mock):
    requests_mock.post(STATUS_URL, status_code=503)
    result = sensor().execute_complete(make_context(), event("success", {"delivered": 3}))
    assert (result["succeeded"], result["failed"], result["pending"]) == (3, 0, 0)


@pytest.mark.parametrize("existing", ["send_report", "audience", "unrelated"])
def test_status_report_path_never_overwrites_a_file_that_is_not_a_status_report(requests_mock, tmp_path, existing):
    report = write_report(tmp_path / "report.jsonl", 5)
    target = {
        "send_report": report,
        "audience": tmp_path / "audience.csv",
        "unrelated": tmp_path / "notes.txt",
    }[existing]
    if existing != "send_report":
        target.write_text("recipient_phone,message_content\n972524265292,hi\n")
    before = target.read_text()
    requests_mock.post(STATUS_URL, json={"messages": []})
    s = sensor(message_uuids=str(report), status_report_path=str(target), max_xcom_results=1)
    with pytest.raises(CommPeakValidationError, match="status_report_path"):
        s.execute(make_context())
    assert target.read_text() == before
    assert requests_mock.call_count == 0


def test_a_status_report_is_overwritten_by_the_next_run(requests_mock, tmp_path):
    report = write_report(tmp_path / "report.jsonl", 3)
    target = tmp_path / "statuses.csv"
    target.write_text("message_uuid,status\nold,sent\n")
    requests_mock.post(
        STATUS_URL,
        json=lambda r, c: {"messages": [{"uuid": u, "status": "delivered"} for u in r.json()["message_uuids"]]},
    )
    result = sensor(message_uuids=str(report), status_report_path=str(target), max_xcom_results=1).poke(make_context())
    assert result.xcom_value["succeeded"] == 3
    assert len(target.read_text().splitlines()) == 4


def test_a_delivery_failure_names_the_failed_rows_and_writes_the_joined_report(requests_mock, tmp_path):
    """The send's report file joins each row's internal_id and line with its uuid and final status."""
    from airflow_provider_commpeak._engine.report import FileSink, MessageResult

    send_report = tmp_path / "send.csv"
    sink = FileSink(send_report, line_of=lambda seq: seq + 2)
    results = [
        MessageResult("row-0", "u0", None, "t"),
        MessageResult("row-1", "u1", None, "t"),
        MessageResult("972524265292", "u2", None, "t"),  # an id that is a phone number: masked
        MessageResult("row-3", None, "INVALID_RECIPIENT", "t"),
    ]
    for seq, result in enumerate(results):
        sink.add(seq, result)
    sink.close()
    statuses = {"u0": "delivered", "u1": "undelivered", "u2": "rejected"}
    requests_mock.post(STATUS_URL, json=answer_with(statuses))
    s = sensor(message_uuids={"report_path": str(send_report)}, status_report_path=str(tmp_path / "delivery.csv"))
    with pytest.raises(CommPeakDeliveryError) as info:
        s.execute(make_context())
    text = str(info.value)
    assert "Failed: internal_id 'row-1' (line 3), internal_id '9725****292' (line 4)" in text
    assert f"Every message's status: {tmp_path / 'delivery.csv'}" in text
    assert "972524265292" not in text
    with open(tmp_path / "delivery.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["internal_id"], r["line"], r["message_uuid"], r["status"], r["send_error"]) for r in rows] == [
        ("row-0", "2", "u0", "delivered", ""),
        ("row-1", "3", "u1", "undelivered", ""),
        ("972524265292", "4", "u2", "rejected", ""),
        ("row-3", "5", "", "", "INVALID_RECIPIENT"),
    ]


def test_a_delivery_failure_without_a_report_path_says_how_to_get_one(requests_mock):
    requests_mock.post(STATUS_URL, json=answer_with({"u1": "undelivered"}))
    s = sensor(message_uuids={"message_uuids": ["u1"], "results": {"m1": {"message_uuid": "u1", "error": None}}})
    with pytest.raises(CommPeakDeliveryError, match="Failed: internal_id 'm1'. Pass status_report_path"):
        s.execute(make_context())
