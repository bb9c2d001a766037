"""Apache Airflow provider for CommPeak's SMS Streams API."""

from __future__ import annotations

__version__ = "1.13.0"

__all__ = ["__version__"]
