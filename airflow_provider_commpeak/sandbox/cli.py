"""The ``commpeak-sandbox`` command: run the emulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from airflow_provider_commpeak.sandbox.server import CommPeakSandbox
from airflow_provider_commpeak.sandbox.state import FAULT_MODES, Fault


def parse_fault(text: str) -> Fault:
    """``MODE`` or ``MODE:COUNT``, e.g. ``503:3`` (the next 3 API requests answer 503)."""
    mode, _, count = text.partition(":")
    try:
        return Fault(mode=mode, count=int(count or 1))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commpeak-sandbox",
        description="A local emulator of CommPeak's SMS Streams API, with fault injection.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8099, help="port (default: 8099; 0 picks a free one)")
    parser.add_argument("--api-key", default="sandbox-key", help="the only API key accepted (default: sandbox-key)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API answer")
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="messages per second before per-message RATE_LIMIT (0 = off)",
    )
    parser.add_argument(
        "--delivery-delay",
        type=float,
        default=1.0,
        help="seconds a message stays 'sent' before its final status",
    )
    parser.add_argument("--seed", type=int, default=None, help="make uuids reproducible")
    parser.add_argument(
        "--fault",
        action="append",
        type=parse_fault,
        default=[],
        metavar="MODE[:COUNT]",
        help=f"queue a fault for the next COUNT API requests; modes: {', '.join(FAULT_MODES)}",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sandbox = CommPeakSandbox(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        delivery_delay=args.delivery_delay,
        seed=args.seed,
        verbose=args.verbose,
    )
    sandbox.state.add_faults(args.fault)

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever to return, so it must run in another thread.
        threading.Thread(target=sandbox._server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(f"CommPeak sandbox listening on {sandbox.url} (API key: {sandbox.api_key})", flush=True)
    print(f"export AIRFLOW_CONN_COMMPEAK_DEFAULT='{sandbox.connection_json}'", flush=True)
    sandbox.serve_forever()
    sandbox.state.wake.set()
    print("CommPeak sandbox stopped", file=sys.stderr, flush=True)
    return 0
