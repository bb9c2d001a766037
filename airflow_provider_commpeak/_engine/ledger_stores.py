"""
The two stores a send ledger can live in, and the choice between them for a running task.

- **Object storage** (``ledger_path=`` on the operator, or ``[commpeak] ledger_path``): a folder on
  any ObjectStoragePath (``file://``, ``s3://``, ``gs://``...), one file per record under
  ``<ledger_path>/<dag_id>/<run_id>/<task_id>/<map_index>/``, each written whole (locally: a
  temporary file renamed over the old one). Works on every supported Airflow, outlives a Clear and
  any retention, and a retry on another worker finds it on shared storage.
- **``task_state_store``** (Airflow >= 3.3): every call through one lock (``airflow dags test``'s
  in-process supervisor channel takes one request at a time), written with an explicit retention.

Where neither is available (Airflow 2.11-3.2 without ``ledger_path``), a retried task resends
everything; the operator warns, naming the option to set.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import quote

#: How long ledger records are kept in ``task_state_store`` (Airflow's default is 30 days, after
#: which a Clear or a retry would send everything again).
LEDGER_RETENTION = timedelta(days=400)
#: The provider config option (``AIRFLOW__COMMPEAK__LEDGER_PATH``) naming a ledger folder.
CONFIG_SECTION, CONFIG_OPTION = "commpeak", "ledger_path"


class TaskStateLedgerStore:
    """
    Airflow's ``task_state_store`` with every call serialized and an explicit retention.

    :param store: ``context["task_state_store"]``.
    :param retention: How long each record is kept (passed where the store takes a retention).
    """

    where = "the task instance's task_state_store"

    def __init__(self, store: Any, *, retention: timedelta = LEDGER_RETENTION) -> None:
        self._store = store
        self._lock = threading.Lock()
        try:
            takes_retention = "retention" in inspect.signature(store.set).parameters
        except (TypeError, ValueError):
            takes_retention = False
        self._options = {"retention": retention} if takes_retention else {}

    def get(self, key: str) -> Any:
        with self._lock:
            return self._store.get(key)

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self._store.set(key, value, **self._options)

    def clear_hint(self) -> str:
        return "clear the task instance's task state (or run the DAG again as a new run)"


class ObjectStorageLedgerStore:
    """
    A ledger folder on object storage or a local disk, one JSON file per record.

    :param base: The ``ledger_path`` (a local path, ``file://`` URL or any ObjectStoragePath URL).
    :param dag_id: The DAG of the task instance.
    :param run_id: Its DAG run.
    :param task_id: The task.
    :param map_index: Its map index (-1 when not mapped).
    """

    def __init__(self, base: Any, *, dag_id: str, run_id: str, task_id: str, map_index: int) -> None:
        parts = [quote(str(part), safe="") for part in (dag_id, run_id, task_id, map_index)]
        text = str(base)
        self._local = "://" not in text or text.startswith("file://")
        if self._local:
            self.folder: Any = os.path.join(os.path.abspath(text.removeprefix("file://")), *parts)
            self.where = self.folder
        else:
            from airflow.providers.common.compat.sdk import ObjectStoragePath

            self.folder = ObjectStoragePath(text.rstrip("/")).joinpath(*parts)
            self.where = str(self.folder)
        self._lock = threading.Lock()
        self._made = False

    def _path(self, key: str) -> Any:
        name = f"{quote(key, safe='')}.json"
        return os.path.join(self.folder, name) if self._local else self.folder / name

    def get(self, key: str) -> Any:
        path = self._path(key)
        try:
            if self._local:
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
            else:
                if not path.exists():
                    return None
                text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError("the file is not JSON (a write cut short?)") from None

    def set(self, key: str, value: Any) -> None:
        data = json.dumps(value, separators=(",", ":"))
        if not self._local:
            self._path(key).write_text(data, encoding="utf-8")  # one PUT: the old object or the new one
            return
        with self._lock:
            if not self._made:
                os.makedirs(self.folder, exist_ok=True)
                self._made = True
        path = self._path(key)
        temporary = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"  # one writer per name
        try:
            with open(temporary, "w", encoding="utf-8") as out:
                out.write(data)
            # atomic against a killed worker: the old record or the new one. No fsync: a machine crash
            # may leave a record unreadable, which stops the retry loudly (LedgerCorrupt), never silently.
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(temporary)
            raise

    def clear_hint(self) -> str:
        return f"delete the folder {self.where}"


def configured_ledger_path() -> str | None:
    """``[commpeak] ledger_path`` (``AIRFLOW__COMMPEAK__LEDGER_PATH``), or ``None`` when unset."""
    from airflow.providers.common.compat.sdk import conf

    value = conf.get(CONFIG_SECTION, CONFIG_OPTION, fallback="")
    return value.strip() or None if isinstance(value, str) else None


def store_for(context: Any, *, ledger_path: Any = None) -> Any:
    """
    The ledger store of the running task instance: object storage when a ledger path is set
    (operator argument first, then the provider config), else ``task_state_store`` where Airflow
    has one, else ``None``.
    """
    path = ledger_path or configured_ledger_path()
    if path:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return ObjectStorageLedgerStore(
            path,
            dag_id=ti.dag_id,
            run_id=context["run_id"],
            task_id=ti.task_id,
            map_index=-1 if map_index is None else map_index,
        )
    store = context.get("task_state_store")
    return TaskStateLedgerStore(store) if store is not None else None
