"""OpenLineage: the audience in, the report out, a run facet of counts; never a number or a text."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip(
    "airflow.providers.openlineage", reason="the OpenLineage provider is not installed (only make test installs it)"
)

from airflow_provider_commpeak.operators.commpeak import SendSmsOperator
from helpers import SEND_URL, accepted_answer, message
from helpers.fakes import make_context


def test_a_file_send_reports_the_audience_the_report_and_its_counts(commpeak_conn, delays, requests_mock, tmp_path):
    requests_mock.post(SEND_URL, json=accepted_answer)
    audience = tmp_path / "audience.jsonl"
    audience.write_text("".join(json.dumps(message(i, phone=f"97252{i:07d}")) + "\n" for i in range(3)))
    op = SendSmsOperator(task_id="send", messages_path=str(audience), report_path=str(tmp_path / "r.csv"))
    op.execute(make_context())
    lineage = op.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", str(audience))]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", str(tmp_path / "r.csv"))]
    facet = lineage.run_facets["commpeak_send"]
    assert (facet.messages, facet.accepted, facet.failed, facet.segments, facet.errors) == (3, 3, 0, 3, {})


def test_object_storage_paths_become_their_namespace():
    from airflow_provider_commpeak._lineage import dataset_for

    dataset = dataset_for("s3://campaigns/2026/audience.csv")
    assert (dataset.namespace, dataset.name) == ("s3://campaigns", "2026/audience.csv")


def test_a_list_send_has_no_datasets_and_nothing_ran_gives_empty_lineage(commpeak_conn, delays, requests_mock):
    requests_mock.post(SEND_URL, json=accepted_answer)
    op = SendSmsOperator(task_id="send", messages=[message(0)])
    assert op.get_openlineage_facets_on_complete(None).run_facets == {}
    op.execute(make_context())
    lineage = op.get_openlineage_facets_on_complete(None)
    assert (lineage.inputs, lineage.outputs) == ([], [])
    assert lineage.run_facets["commpeak_send"].accepted == 1


@pytest.mark.sandbox
def test_a_real_airflow_run_emits_the_facets_through_the_console_transport(airflow_db, commpeak_sandbox, tmp_path):
    """``dag.test()`` of a CSV campaign in a fresh Airflow process, OpenLineage on with its console transport."""
    import csv

    audience = tmp_path / "audience.csv"
    with audience.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["internal_id", "recipient_phone", "message_content"])
        writer.writerows([("r1", "052-426-5292", "Secret sale for Dana"), ("r2", "+972 54-533-0008", "Hi Avi")])
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "console"}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "commpeak-test",
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        "COMMPEAK_TEST_AUDIENCE": str(audience),
        "COMMPEAK_TEST_DELIVERY": str(tmp_path / "delivery.csv"),
        "TMPDIR": str(tmp_path),
    }
    code = (
        "import sys; sys.path.insert(0, 'tests');"
        "from helpers.airflow import TEST_DAGS, dag_bag;"
        "dag = dag_bag(TEST_DAGS / 'csv_campaign.py').dags['commpeak_csv_campaign'];"
        "dag.test()"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "commpeak_send" in output, "no OpenLineage event carried the send's facet"
    assert str(audience) in output  # the input dataset
    assert "972524265292" not in output.split("commpeak_send")[1][:2000]
    assert "Secret sale" not in output
