"""``python -m airflow_provider_commpeak.sandbox``: the same as the ``commpeak-sandbox`` command."""

from __future__ import annotations

from airflow_provider_commpeak.sandbox.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
