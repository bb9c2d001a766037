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
        "--max-in-flight",
        type=int,
        default=0,
        help="API requests served at once; one more gets a bare 429, as from an edge proxy (0: no cap)",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        default=0.0,
        help="messages per second before per-message RATE_LIMIT (0 = off)",
    )
    parser.add_argument(
        "--status-rate-limit",
        type=float,
        default=0.0,
        help="messages_status requests per second, evenly spaced, no burst; one sooner gets a bare 429 (0 = off)",
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


def build_check_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commpeak-sandbox check",
        description=(
            "Check that a CommPeak endpoint answers the way the provider relies on. Sends no SMS unless "
            "--to is given. The key comes from COMMPEAK_API_KEY, or from --conn-id (an Airflow connection)."
        ),
    )
    parser.add_argument("--url", default=None, help="the API's base URL (default: the connection's, else CommPeak's)")
    parser.add_argument("--conn-id", default=None, help="read the key (and URL) from this Airflow connection")
    parser.add_argument("--to", default=None, help="also send ONE real SMS to this number (international digits)")
    return parser


def check(argv: Sequence[str]) -> int:
    """``commpeak-sandbox check``: run the contract check; 0 when every answer has the expected shape."""
    import os

    from airflow_provider_commpeak.contract import ContractCheck, report

    args = build_check_parser().parse_args(argv)
    key, url = os.environ.get("COMMPEAK_API_KEY"), args.url
    if args.conn_id:
        from airflow_provider_commpeak.hooks.commpeak import CommPeakHook  # Airflow only for a connection

        config = CommPeakHook(commpeak_conn_id=args.conn_id).config
        key, url = config.api_key, url or config.base_url
    if not key:
        print("No key: set COMMPEAK_API_KEY or pass --conn-id", file=sys.stderr)
        return 2
    results = ContractCheck(url or "https://sendsms.commpeak.com", key, to=args.to).run()
    print(report(results))
    failed = sum(not r.ok for r in results)
    print(f"\n{len(results) - failed} of {len(results)} check(s) passed", flush=True)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check"]:
        return check(argv[1:])
    args = build_parser().parse_args(argv)
    sandbox = CommPeakSandbox(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        latency_ms=args.latency_ms,
        rate_limit=args.rate_limit,
        delivery_delay=args.delivery_delay,
        seed=args.seed,
        max_in_flight=args.max_in_flight,
        status_rate_limit=args.status_rate_limit,
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
