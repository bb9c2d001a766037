"""
What an alert is about, read from a callback's context on Airflow 2.11 and 3.x: the default text,
the event key that makes a repeated callback for one event a no-op, and texts trimmed to a budget
of SMS segments.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_provider_commpeak._engine.connection import is_loopback
from airflow_provider_commpeak._input.segments import count_segments

#: The ellipsis ending a trimmed text (three dots: GSM-7, one septet each).
ELLIPSIS = "..."

_STATES = {
    "failed": "failed",
    "up_for_retry": "failed, will retry",
    "success": "succeeded",
    "skipped": "was skipped",
    "upstream_failed": "could not run (upstream failed)",
}


@dataclass(frozen=True)
class AlertEvent:
    """
    The event a callback fired for.

    :param kind: ``task``, ``dag`` or ``deadline``.
    :param state: In words: ``failed``, ``failed, will retry``, ``succeeded``, ``missed its deadline``...
    """

    kind: str
    dag_id: str
    run_id: str
    state: str
    task_id: str | None = None
    map_index: int = -1
    try_number: int | None = None
    tries: int | None = None
    url: str | None = None
    deadline_id: str | None = None

    @property
    def key(self) -> str:
        """Identifies the event: the same callback firing twice for it gives the same key."""
        parts = (
            self.kind,
            self.dag_id,
            self.run_id,
            self.task_id,
            self.map_index,
            self.try_number,
            self.state,
            self.deadline_id,
        )
        return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _state_name(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _ui_url(dag_id: str, run_id: str, task_id: str | None, map_index: int) -> str | None:
    """A link to the run (or task) in Airflow 3's UI, when ``[api] base_url`` is set."""
    try:
        from airflow.providers.common.compat.sdk import conf

        base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:
        return None
    if not base:
        return None
    url = f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    if task_id:
        url += f"/tasks/{quote(task_id, safe='')}" + (f"/mapped/{map_index}" if map_index >= 0 else "")
    return url


def _is_local(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        return is_loopback(urlsplit(url).hostname)
    except ValueError:
        return True


def read_event(context: Mapping[str, Any]) -> AlertEvent:
    """What the callback is about, from the context Airflow gives it (task, DAG or deadline)."""
    if "deadline" in context and "dag_run" in context and isinstance(context["dag_run"], Mapping):
        run = context["dag_run"]
        return AlertEvent(
            kind="deadline",
            dag_id=str(run.get("dag_id", "?")),
            run_id=str(run.get("dag_run_id") or run.get("run_id") or "?"),
            state="missed its deadline",
            deadline_id=str(_get(context["deadline"], "id")),
        )
    dag_run, ti = context.get("dag_run"), context.get("ti")
    dag = context.get("dag")
    dag_id = str(_get(ti, "dag_id") or _get(dag, "dag_id") or _get(dag_run, "dag_id") or "?")
    run_id = str(context.get("run_id") or _get(dag_run, "run_id") or "?")
    if "reason" in context:  # a DAG callback (its context may carry the run's last task instance)
        reason = str(context.get("reason") or "")
        state = "succeeded" if reason == "success" else "failed"
        url = _ui_url(dag_id, run_id, None, -1)
        return AlertEvent(
            kind="dag", dag_id=dag_id, run_id=run_id, state=state, url=None if url and _is_local(url) else url
        )
    task_id = _get(ti, "task_id")
    map_index = _get(ti, "map_index")
    map_index = map_index if isinstance(map_index, int) else -1
    state = _STATES.get(_state_name(_get(ti, "state"))) or (
        "failed" if context.get("exception") is not None else "finished"
    )
    try_number, max_tries = _get(ti, "try_number"), _get(ti, "max_tries")
    url = _get(ti, "log_url") if isinstance(_get(ti, "log_url"), str) else _ui_url(dag_id, run_id, task_id, map_index)
    if url and _is_local(url):
        url = None  # a link to this machine is no use on a phone
    return AlertEvent(
        kind="task",
        dag_id=dag_id,
        run_id=run_id,
        state=state,
        task_id=str(task_id) if task_id else None,
        map_index=map_index,
        try_number=try_number if isinstance(try_number, int) else None,
        tries=max_tries + 1 if isinstance(max_tries, int) and max_tries > 0 else None,
        url=url,
    )


def default_text(event: AlertEvent, max_segments: int | None) -> str:
    """``Airflow: etl_daily / load failed (try 2/3), run scheduled__2026-11-27`` (and a link if it fits)."""
    subject = event.dag_id
    if event.task_id:
        subject += f" / {event.task_id}" + (f"[{event.map_index}]" if event.map_index >= 0 else "")
    tries = f" (try {event.try_number}/{event.tries})" if event.tries and event.try_number else ""
    text = f"Airflow: {subject} {event.state}{tries}, run {event.run_id}"
    with_url = f"{text} {event.url}" if event.url else text
    if max_segments is None or count_segments(with_url).segments <= max_segments:
        return with_url
    return trim_to_segments(text, max_segments)


def trim_to_segments(text: str, max_segments: int) -> str:
    """``text`` as is if it fits in ``max_segments`` SMS segments, else its longest prefix that fits with "..."."""
    if count_segments(text).segments <= max_segments:
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix (with the ellipsis) that fits
        middle = (low + high + 1) // 2
        if count_segments(text[:middle].rstrip() + ELLIPSIS).segments <= max_segments:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + ELLIPSIS


class RecentEvents:
    """The events this process already alerted for (a callback firing twice sends once); bounded."""

    def __init__(self, size: int = 1024) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._size = size

    def first_time(self, key: str) -> bool:
        """Record ``key``; ``False`` if it was recorded before."""
        if key in self._seen:
            return False
        self._seen[key] = time.time()
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return True

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)
