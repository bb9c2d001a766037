"""Running example DAGs with ``dag.test()`` and reading what they left in the metadata DB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
TEST_DAGS = Path(__file__).resolve().parents[1] / "dags"


def dag_bag(path: Path | str = EXAMPLES):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 2
        from airflow.models.dagbag import DagBag

    kwargs: dict[str, Any] = {"dag_folder": str(path)}
    import inspect

    if "include_examples" in inspect.signature(DagBag.__init__).parameters:
        kwargs["include_examples"] = False
    return DagBag(**kwargs)


def load_example(dag_id: str):
    bag = dag_bag()
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def xcom_value(dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    try:
        from airflow.models.xcom import XComModel
    except ImportError:  # Airflow 2
        from airflow.models.xcom import XCom

        return XCom.get_one(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key, map_index=map_index)
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key, map_index=map_index)
            .one()
        )
        return XComModel.deserialize_value(row)


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        return {
            ti.task_id + ("" if ti.map_index < 0 else f"[{ti.map_index}]"): str(getattr(ti.state, "value", ti.state))
            for ti in tis
        }


def run_state(dag_run) -> str:
    return str(getattr(dag_run.state, "value", dag_run.state))


def asset_event_extras(uri: str) -> list[dict[str, Any]]:
    """The ``extra`` of every event of the asset (a dataset on Airflow 2) at ``uri``, oldest first."""
    from airflow.utils.session import create_session

    try:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        key = "asset_id"
    except ImportError:  # Airflow 2
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model

        key = "dataset_id"
    with create_session() as session:
        model = session.query(Model).filter_by(uri=uri).one()
        events = session.query(Event).filter_by(**{key: model.id}).order_by(Event.id).all()
        return [dict(event.extra or {}) for event in events]
