"""
Reading the connection, sync and async, including where Airflow's own lookup falls short.

``airflow dags test`` (and ``dag.test()``) on Airflow 3 cannot read a connection stored in the
metadata database in two places: a DAG callback runs outside any task, where the Task SDK's
lookup skips the database; and an inline trigger runs with an in-process supervisor that has no
async channel, so ``aget_connection`` finds nothing. Where the normal lookup says "not defined",
these functions try once more the way that works there; in a real deployment the first lookup
answers and nothing else happens.

Upstream: the inline trigger's missing channel is apache/airflow#54692 (partly fixed by #55236, 3.1);
callbacks without connection access, apache/airflow#65269 (comm handlers for the callback
supervisor, after 3.3); the async path skipping the metadata database, apache/airflow#63929 (open).
Seen on Airflow 3.0-3.3; Airflow 2.11 needs none of it (its lookup reads the database directly).
Drop each fallback once the oldest supported Airflow has the fix.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from airflow.providers.common.compat.sdk import BaseHook


@cache
def _not_found() -> tuple[type[BaseException], ...]:
    """
    "Not defined" as each Airflow raises it: the Task SDK's ``AirflowNotFoundException`` (3.x) and
    the core one (2.11, and the metadata-database lookups of 3.x), which are distinct classes.
    """
    found: list[type[BaseException]] = []
    for module in ("airflow.sdk.exceptions", "airflow.exceptions"):
        try:
            kind = importlib.import_module(module).AirflowNotFoundException
        except (ImportError, AttributeError):
            continue
        if kind not in found:
            found.append(kind)
    return tuple(found)


def _outside_a_task() -> bool:
    """Whether this process runs no Task SDK task (Airflow 3's ``dags test`` main process, say)."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # Airflow 2: BaseHook reads the database itself
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is None


def get_connection(conn_id: str) -> Any:
    """``BaseHook.get_connection``; outside a task, the metadata database too."""
    try:
        return BaseHook.get_connection(conn_id)
    except _not_found() as exc:
        if not _outside_a_task():
            raise
        from airflow.models.connection import Connection

        try:
            return Connection.get_connection_from_secrets(conn_id)
        except _not_found():
            raise exc from None


async def aget_connection(conn_id: str) -> Any:
    """The async lookup; if it finds nothing, the sync one in a thread (it has a channel that works)."""
    from airflow.providers.common.compat.connection import get_async_connection
    from asgiref.sync import sync_to_async

    try:
        return await get_async_connection(conn_id, hook=BaseHook)
    except _not_found():
        return await sync_to_async(get_connection)(conn_id)


async def aget_extra(conn: Any) -> Any:
    """The connection's extra as a dict, without blocking the event loop."""
    from airflow.providers.common.compat.connection import get_async_extra_dejson

    return await get_async_extra_dejson(conn)


def get_variable(key: str) -> str | None:
    """An Airflow Variable's value, or ``None``; outside a task (``dags test``) from the database."""
    from airflow.providers.common.compat.sdk import Variable

    value = Variable.get(key, None)
    if value is None and _outside_a_task():
        from airflow.models.variable import Variable as CoreVariable

        value = CoreVariable.get(key, None)
    return value


def set_variable(key: str, value: str, *, description: str) -> None:
    """Set an Airflow Variable; outside a task (``dags test``) in the database."""
    if _outside_a_task():
        from airflow.models.variable import Variable as CoreVariable

        CoreVariable.set(key, value, description=description)
        return
    from airflow.providers.common.compat.sdk import Variable

    Variable.set(key, value, description=description)
