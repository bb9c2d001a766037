"""
A local CommPeak SMS Streams API emulator for offline DAG development and tests.

Imports nothing from Airflow. Run ``commpeak-sandbox`` (or ``python -m
airflow_provider_commpeak.sandbox``), use :class:`CommPeakSandbox` in-process, or the pytest fixture
``commpeak_sandbox``.
"""

from __future__ import annotations

from airflow_provider_commpeak.sandbox.server import CommPeakSandbox
from airflow_provider_commpeak.sandbox.state import FAULT_MODES, REFUSED_NUMBER, TEST_NUMBERS, Fault

__all__ = ["FAULT_MODES", "REFUSED_NUMBER", "TEST_NUMBERS", "CommPeakSandbox", "Fault"]
