"""`make run`: the whole gateway locally, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from devstack.stack import LocalStack
from shared.config import Settings


def main() -> int:
    state_dir = os.environ.get("GATEWAY_STATE_DIR")
    settings = Settings.from_env()  # PORT for the router, THREADS for every function
    stack = LocalStack(port=settings.port, threads=settings.threads)
    if state_dir:
        stack.state_dir = Path(state_dir)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        info = stack.start()
        print(f"gateway listening on {info.url}")
        print(f"admin key (owner 'default'): {info.admin_key}")
        print(f"operator key (tenants, keys, usage, audit): {info.operator_key}")
        print(f"console: {info.console} (sign in with the admin key)")
        print(f"Mistral upstream: {info.mistral_url}")
        print("stack details in .local/stack.json; Ctrl-C stops everything")
        sys.stdout.flush()
        stop.wait()
    finally:
        stack.stop()
        print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
