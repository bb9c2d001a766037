"""Print what the demo run sent and delivered: the sandbox's record and each task's state."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections import Counter


def sandbox(path: str, body: dict | None = None) -> dict:
    url = f"{os.environ['SANDBOX_URL']}{path}"
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": "sandbox-key", "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as answer:
        return json.load(answer)


def task_states(dag_id: str) -> tuple[str, list[tuple[str, str]]]:
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.start_date.desc()).first()
        if run is None:
            return "no run", []
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
        return str(run.state), sorted(
            (ti.task_id + ("" if ti.map_index < 0 else f"[{ti.map_index}]"), str(ti.state)) for ti in tis
        )


def main(dag_id: str) -> int:
    record = sandbox("/_sandbox/messages")
    uuids = [m["message_uuid"] for m in record["messages"]]
    statuses = sandbox("/messages_status/", {"message_uuids": uuids})["messages"] if uuids else []
    counts = Counter(s["status"] for s in statuses)
    duplicates = sum(1 for m in record["messages"] if m["times_accepted"] > 1)
    run_state, states = task_states(dag_id)
    print()
    print(f"Demo summary for DAG {dag_id}")
    print(f"  messages sent (accepted by the sandbox): {record['count']}  (sent twice: {duplicates})")
    print(
        f"  delivered: {counts.get('delivered', 0)}   failed: {sum(n for s, n in counts.items() if s not in ('delivered', 'sent'))}"
        f"   still pending: {counts.get('sent', 0)}   ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})"
    )
    print(f"  requests the sandbox answered: {record['requests']}")
    print(f"  DAG run: {run_state}")
    for task_id, state in states:
        print(f"    {task_id:<24} {state}")
    return 0 if run_state.endswith("success") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "commpeak_send_and_wait"))
