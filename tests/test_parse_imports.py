"""The DAG-parse promise: importing the operator, sensor and notifier loads no HTTP client and no phone library."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import json, sys
from airflow.providers.common.compat.sdk import BaseOperator, BaseSensorOperator  # what any DAG file loads
before = set(sys.modules)
import airflow_provider_commpeak.operators.commpeak
import airflow_provider_commpeak.sensors.commpeak
import airflow_provider_commpeak.notifications.commpeak
added = set(sys.modules) - before
print(json.dumps(sorted(m for m in added if m.split(".")[0] in ("requests", "urllib3", "httpx", "phonenumbers"))))
"""


def test_importing_the_dag_facing_modules_loads_neither_requests_nor_phonenumbers():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
