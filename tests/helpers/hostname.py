"""``[core] hostname_callable`` for the Celery end-to-end test: each worker reports its own name."""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    """The worker's name from ``COMMPEAK_E2E_WORKER``, else the machine's."""
    return os.environ.get("COMMPEAK_E2E_WORKER") or socket.getfqdn()
