"""
Metrics through Airflow's ``Stats`` (StatsD or OpenTelemetry, whichever the deployment configured).

Every name starts with ``commpeak.``; values are counts and rates, tags are the DAG and task ids
(where the deployment's backend takes tags). No phone number, text or message id is ever in a name
or a tag: error kinds are the provider's own codes or CommPeak's, already reduced to a safe code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.providers.common.compat.sdk import Stats

from airflow_provider_commpeak._engine.report import SendOutcome

PREFIX = "commpeak"


def task_tags(context: Mapping[str, Any] | None) -> dict[str, str]:
    """``{"dag_id", "task_id"}`` of the running task, when there is one."""
    ti = (context or {}).get("ti") or (context or {}).get("task_instance")
    if ti is None:
        return {}
    return {key: str(getattr(ti, key)) for key in ("dag_id", "task_id") if getattr(ti, key, None) is not None}


def incr(name: str, count: int, tags: dict[str, str]) -> None:
    if count:
        Stats.incr(f"{PREFIX}.{name}", count, tags=tags)


def send_outcome(outcome: SendOutcome, *, pace: float | None, tags: dict[str, str]) -> None:
    """A send's figures: messages, accepted, failed, each error kind, requests, refusals, the pace."""
    incr("send.messages", outcome.messages, tags)
    incr("send.accepted", outcome.accepted, tags)
    incr("send.failed", outcome.failed, tags)
    for kind, count in outcome.errors.items():
        incr(f"send.errors.{kind.lower()}", count, tags)
    incr("send.requests", outcome.requests, tags)
    incr("send.refused", outcome.refused, tags)
    Stats.gauge(f"{PREFIX}.send.pace", round(pace or 0.0, 1), tags=tags)


def delivery(counts: Mapping[str, int], tags: dict[str, str]) -> None:
    """A wait's verdict: messages delivered, failed and still pending."""
    for key in ("succeeded", "failed", "pending"):
        incr(f"delivery.{key}", int(counts.get(key) or 0), tags)


def alert(sent: int, skipped: int, tags: dict[str, str]) -> None:
    """Alerts sent, and recipients skipped (``min_interval``)."""
    incr("alerts.sent", sent, tags)
    incr("alerts.skipped", skipped, tags)
