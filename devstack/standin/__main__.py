"""`python -m devstack.standin`: serve the stand-in until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from ._server import StandIn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.standin",
        description="A local stand-in for Mistral's Conversations & Agents API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay before every answer")
    parser.add_argument("--api-key", help="accept only this bearer token (default: any)")
    parser.add_argument(
        "--fault", help="a fault for every API request, e.g. 'status=503' or 'latency=200'"
    )
    parser.add_argument(
        "--state-file",
        type=Path,
        help="keep conversations and agents in this JSON file across restarts",
    )
    args = parser.parse_args(argv)
    try:
        standin = StandIn(
            host=args.host,
            port=args.port,
            latency_ms=args.latency_ms,
            api_key=args.api_key,
            default_fault=args.fault,
            state_file=args.state_file,
        )
    except ValueError as error:
        parser.error(str(error))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with standin:
        print(f"standin listening on {standin.url}", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
