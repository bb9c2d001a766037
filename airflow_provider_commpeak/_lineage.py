"""
OpenLineage for ``SendSmsOperator`` (used only when the OpenLineage provider is installed).

Input dataset: the audience file or object (``messages_path``); output dataset: the per-message
report file; a run facet with the send's counts. Never a phone number or a text: datasets are
named by their location, the facet holds counts.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.openlineage.facet import Dataset
from airflow.providers.openlineage.extractors import OperatorLineage
from attrs import define
from openlineage.client.facet_v2 import RunFacet


@define
class CommPeakSendRunFacet(RunFacet):
    """
    What a CommPeak send did, in counts.

    :param messages: Messages the send settled.
    :param accepted: Of those, accepted by CommPeak.
    :param failed: Not accepted, or outcome unknown (not those left out on purpose).
    :param segments: SMS segments of the messages validated for sending.
    :param errors: Messages per error kind (``UNCONFIRMED``, ``DUPLICATE``...).
    """

    messages: int
    accepted: int
    failed: int
    segments: int | None
    errors: dict[str, int]


def dataset_for(path: Any) -> Dataset:
    """An OpenLineage dataset for a local path or an ObjectStoragePath URL (``s3://bucket/key``)."""
    text = str(path)
    if "://" in text and not text.startswith("file://"):
        parts = urlsplit(text)
        return Dataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/") or "/")
    return Dataset(namespace="file", name=os.path.abspath(text.removeprefix("file://")))


def send_lineage(sent: dict[str, Any] | None) -> OperatorLineage:
    """The lineage of a finished send (``sent``: what the operator remembered of it; ``None``: nothing ran)."""
    if not sent:
        return OperatorLineage()
    facet = CommPeakSendRunFacet(
        messages=sent["messages"],
        accepted=sent["accepted"],
        failed=sent["failed"],
        segments=sent.get("segments"),
        errors=dict(sent.get("errors") or {}),
    )
    return OperatorLineage(
        inputs=[dataset_for(sent["input"])] if sent.get("input") else [],
        outputs=[dataset_for(sent["output"])] if sent.get("output") else [],
        run_facets={"commpeak_send": facet},
    )
