"""
The ``commpeak_sandbox`` pytest fixture, registered through the ``pytest11`` entry point.

.. code-block:: python

    def test_my_dag(commpeak_sandbox):
        my_dag.test()  # AIRFLOW_CONN_COMMPEAK_DEFAULT points at the sandbox
        assert len(commpeak_sandbox.accepted) == 3
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_commpeak.sandbox.server import CommPeakSandbox


@pytest.fixture
def commpeak_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[CommPeakSandbox]:
    """
    A fresh sandbox on a free 127.0.0.1 port, with ``AIRFLOW_CONN_COMMPEAK_DEFAULT`` pointing at it.

    Messages reach their final status after 0.2 s. Parametrise further with :class:`CommPeakSandbox`
    directly when a test needs a rate limit or latency.
    """
    with CommPeakSandbox(delivery_delay=0.2) as sandbox:
        monkeypatch.setenv("AIRFLOW_CONN_COMMPEAK_DEFAULT", sandbox.connection_json)
        yield sandbox
