"""Small stand-ins for Airflow's runtime objects in unit tests."""

from __future__ import annotations

from typing import Any


class FakeTaskInstance:
    """Records XCom pushes."""

    def __init__(self, dag_id: str = "dag", task_id: str = "send", map_index: int = -1) -> None:
        self.dag_id = dag_id
        self.task_id = task_id
        self.map_index = map_index
        self.try_number = 1
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class FakeStateStore:
    """Airflow 3.3's ``task_state_store``: a JSON key-value store that survives retries."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        import json

        self.data[key] = json.loads(json.dumps(value))  # JSON only, like the real store


def make_context(*, store: FakeStateStore | None = None, run_id: str = "manual__1", **ti_kwargs: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"ti": FakeTaskInstance(**ti_kwargs), "run_id": run_id}
    if store is not None:
        context["task_state_store"] = store
    return context


class FileStateStore:
    """A ``task_state_store`` kept in a folder, one file per key, written atomically: survives SIGKILL."""

    def __init__(self, folder: Any) -> None:
        from pathlib import Path

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Any:
        return self.folder / f"{key}.json"

    def get(self, key: str, default: Any = None) -> Any:
        import json

        try:
            return json.loads(self._path(key).read_text())
        except FileNotFoundError:
            return default

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        import json
        import os

        temporary = self._path(key).with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(json.dumps(value))
        os.replace(temporary, self._path(key))
