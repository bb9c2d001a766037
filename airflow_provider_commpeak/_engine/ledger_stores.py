"""
The two stores a send ledger can live in, and the choice between them for a running task.

- **``ledger_path``** (``ledger_path=`` on the operator, or ``[commpeak] ledger_path``): a folder
  per task instance, ``<ledger_path>/<dag_id>/<run_id>/<task_id>/<map_index>/``: on a local or
  mounted disk an append-only log, on object storage (``s3://``, ``gs://``... any
  ObjectStoragePath) one object per record, each written whole. Works on every supported Airflow,
  outlives a Clear and any retention, and a retry on another worker finds it on shared storage.
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
import tempfile
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import quote

#: How long ledger records are kept in ``task_state_store`` (Airflow's default is 30 days, after
#: which a Clear or a retry would send everything again).
LEDGER_RETENTION = timedelta(days=400)
#: The provider config option (``AIRFLOW__COMMPEAK__LEDGER_PATH``) naming a ledger folder.
CONFIG_SECTION, CONFIG_OPTION = "commpeak", "ledger_path"


class UnreadableRecord(ValueError):
    """A stored record that cannot be parsed (a store raises it; other errors are the store's own)."""


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


def _task_folder(dag_id: str, run_id: str, task_id: str, map_index: int) -> list[str]:
    return [quote(str(part), safe="") for part in (dag_id, run_id, task_id, map_index)]


class LocalLogLedgerStore:
    """
    A ledger on a local (or mounted shared) disk: one append-only log per task instance,
    ``<folder>/ledger.log``, a line ``<key>\t<JSON>`` per write, the last line of a key winning.

    Each write is one ``write()`` to a file opened for appending: about a twentieth of the cost of
    writing and renaming a file. A kill cannot tear a line (the kernel finishes the write); should a
    machine crash leave a torn last line, it is cut off before the next append.

    :param folder: The task instance's folder.
    """

    LOG = "ledger.log"

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.where = os.path.join(folder, self.LOG)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._offsets: dict[str, tuple[int, int]] | None = None
        self._reader: Any = None  # kept open while a retry reads every record

    def _scan(self) -> dict[str, tuple[int, int]]:
        """Where the last line of each key starts, and its length (a torn last line is left out)."""
        offsets: dict[str, tuple[int, int]] = {}
        try:
            handle = open(self.where, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return offsets
        with handle:
            position = 0
            for number, line in enumerate(handle, 1):
                if not line.endswith(b"\n"):
                    break  # a torn last line: never completed, so never relied on
                key, tab, _ = line.partition(b"\t")
                if not tab:
                    raise UnreadableRecord(f"line {number} of the log is damaged")
                offsets[key.decode("utf-8", "replace")] = (position, len(line))
                position += len(line)
        return offsets

    def get(self, key: str) -> Any:
        with self._lock:
            if self._offsets is None:
                self._offsets = self._scan()
            where = self._offsets.get(key)
            if where is None:
                return None
            if self._reader is None:
                self._reader = open(self.where, "rb")  # noqa: SIM115 - closed by set() and close()
            self._reader.seek(where[0])
            line = self._reader.read(where[1])
        try:
            return json.loads(line.partition(b"\t")[2])
        except ValueError:
            raise UnreadableRecord("its line in the log is not JSON") from None

    def _open(self) -> int:
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.where, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, max(size - 65536, 0), os.SEEK_SET)
            tail = os.read(fd, 65536)
            if not tail.endswith(b"\n"):  # a torn last line (a machine crash): cut it off
                os.ftruncate(fd, size - len(tail) + tail.rfind(b"\n") + 1)
        return fd

    def set(self, key: str, value: Any) -> None:
        line = f"{key}\t{json.dumps(value, separators=(',', ':'))}\n".encode()
        with self._lock:
            if self._fd is None:
                self._fd = self._open()
            os.write(self._fd, line)
            self._forget_reads()

    def _forget_reads(self) -> None:
        """After a write, the offsets read are stale: scan again on the next get."""
        self._offsets = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._forget_reads()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def clear_hint(self) -> str:
        return f"delete the folder {self.folder}"


class ObjectStorageLedgerStore:
    """
    A ledger on object storage (``s3://``, ``gs://``... any ObjectStoragePath): one object per
    record under the task instance's folder, each written whole by one PUT (the old object or the
    new one, never a torn one).

    :param folder: The task instance's folder, an ObjectStoragePath.
    """

    def __init__(self, folder: Any) -> None:
        self.folder = folder
        self.where = str(folder)

    def _path(self, key: str) -> Any:
        return self.folder / f"{quote(key, safe='')}.json"

    def get(self, key: str) -> Any:
        path = self._path(key)
        try:
            if not path.exists():
                return None
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise UnreadableRecord("the object is not JSON") from None

    def set(self, key: str, value: Any) -> None:
        self._path(key).write_text(json.dumps(value, separators=(",", ":")), encoding="utf-8")

    def clear_hint(self) -> str:
        return f"delete the folder {self.where}"


def ledger_path_store(
    base: Any, *, dag_id: str, run_id: str, task_id: str, map_index: int
) -> LocalLogLedgerStore | ObjectStorageLedgerStore:
    """
    The store of a task instance's ledger under ``ledger_path``: ``<base>/<dag_id>/<run_id>/<task_id>/<map_index>/``.

    :param base: A local path, a ``file://`` URL (an append-only log) or any other ObjectStoragePath
        URL (one object per record).
    """
    parts = _task_folder(dag_id, run_id, task_id, map_index)
    text = str(base)
    if "://" not in text or text.startswith("file://"):
        return LocalLogLedgerStore(os.path.join(os.path.abspath(text.removeprefix("file://")), *parts))
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return ObjectStorageLedgerStore(ObjectStoragePath(text.rstrip("/")).joinpath(*parts))


def configured_ledger_path() -> str | None:
    """``[commpeak] ledger_path`` (``AIRFLOW__COMMPEAK__LEDGER_PATH``), or ``None`` when unset."""
    from airflow.providers.common.compat.sdk import conf

    value = conf.get(CONFIG_SECTION, CONFIG_OPTION, fallback="")
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def default_report_path(context: Any, *, ledger_path: Any = None, suffix: str = ".csv") -> str:
    """
    Where a send's per-message report goes when the user named no place: ``report<suffix>`` in the
    task instance's ledger folder when a ledger path is set (shared storage, beside the ledger),
    else in ``<temp dir>/commpeak-reports/<dag_id>/<run_id>/<task_id>/<map_index>/`` on this machine.
    The same task instance always gets the same path: a retry rewrites its own report.
    """
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    parts = _task_folder(ti.dag_id, context["run_id"], ti.task_id, -1 if map_index is None else map_index)
    name = f"report{suffix}"
    base = ledger_path or configured_ledger_path()
    if base is None:
        return os.path.join(tempfile.gettempdir(), "commpeak-reports", *parts, name)
    text = str(base)
    if "://" not in text or text.startswith("file://"):
        return os.path.join(os.path.abspath(text.removeprefix("file://")), *parts, name)
    return "/".join([text.rstrip("/"), *parts, name])


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
        return ledger_path_store(
            path,
            dag_id=ti.dag_id,
            run_id=context["run_id"],
            task_id=ti.task_id,
            map_index=-1 if map_index is None else map_index,
        )
    store = context.get("task_state_store")
    return TaskStateLedgerStore(store) if store is not None else None
