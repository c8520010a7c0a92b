"""CPU per upstream call of `shared.mistral`, one HTTP client against another.

    .venv/bin/python -m bench.http_cpu [--calls 2000] [--runs 5]

Starts the stand-in (`python -m devstack.standin`) in its own process on a free port, so
the process CPU measured here (`time.process_time()`) is the client's alone, then times N
sequential calls of each kind through `MistralClient` for each HTTP client, in alternating
runs, and prints the median CPU per call. Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shared.config import Settings
from shared.mistral import HTTP_CLIENTS, MistralClient, Retry, build_client

_START = json.dumps({"model": "mistral-small-latest", "inputs": "Hello"}).encode()
_STREAM = json.dumps({"model": "mistral-small-latest", "inputs": "Hello", "stream": True}).encode()


@contextmanager
def standin() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.standin", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        process.wait(10)


def _kinds(client: MistralClient) -> dict[str, Callable[[], None]]:
    created = client.call("conversations.start", "POST", "/v1/conversations", _START)
    history = f"/v1/conversations/{created.json()['conversation_id']}/history"

    def get() -> None:
        client.call("conversations.history", "GET", history)

    def start() -> None:
        client.call("conversations.start", "POST", "/v1/conversations", _START, retry=Retry.UNSENT)

    def stream() -> None:
        upstream = client.stream("conversations.start", "/v1/conversations", _STREAM)
        for _ in upstream.chunks():
            pass
        upstream.close()

    return {"call GET history": get, "call POST start": start, "stream POST start": stream}


def _cpu_per_call_us(work: Callable[[], None], calls: int) -> float:
    for _ in range(20):  # warm: connection open, caches filled
        work()
    started = time.process_time()
    for _ in range(calls):
        work()
    return (time.process_time() - started) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_cpu")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clients", default=",".join(HTTP_CLIENTS))
    args = parser.parse_args(argv)
    names = args.clients.split(",")
    results: dict[tuple[str, str], list[float]] = {}
    with standin() as url:
        settings = Settings(mistral_api_key="bench-key", mistral_server_url=url)
        clients = {name: build_client(settings, None, http=name) for name in names}
        kinds = {name: _kinds(client) for name, client in clients.items()}
        for _ in range(args.runs):
            for name in names:
                for kind, work in kinds[name].items():
                    results.setdefault((kind, name), []).append(_cpu_per_call_us(work, args.calls))
    width = max(len(kind) for kind, _ in results)
    print(f"{'':{width}}  " + "  ".join(f"{n:>14}" for n in names) + "  (us CPU per call, median)")
    for kind in dict.fromkeys(kind for kind, _ in results):
        medians = [statistics.median(results[kind, name]) for name in names]
        cells = "  ".join(f"{m:14.0f}" for m in medians)
        change = f"  {medians[-1] / medians[0] - 1:+.0%}" if len(names) > 1 else ""
        print(f"{kind:{width}}  {cells}{change}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
