"""CPU per upstream call of `shared.mistral`, one HTTP client against another.

    .venv/bin/python -m bench.http_cpu [--calls 2000] [--runs 5]
    .venv/bin/python -m bench.http_cpu --full-start [--runs 7] [--seconds 3]

Starts the stand-in (`python -m devstack.standin`) in its own process on a free port, so
the process CPU measured here (`time.process_time()`) is the client's alone, then times N
sequential calls of each kind through `MistralClient` for each HTTP client, in alternating
runs, and prints the median CPU per call.

`--full-start` measures what the choice costs a whole request: the bench stack
(`bench._stack.BenchStack`), one stand-in at 0 ms and one start instance per HTTP client
(`MISTRAL_HTTP_CLIENT`, THREADS as deployed), then, client after client in each round, one
wrk client sends full starts for `--seconds` while the instance's CPU seconds are counted
(the "Gateway CPU per full start request" row of `make bench`); it prints the median CPU
per start of each. Not a test: figures depend on the machine.
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


def full_start(names: list[str], runs: int, seconds: float) -> dict[str, list[float]]:
    """CPU ms per full start of one start instance per HTTP client, rounds interleaved."""
    from contextlib import ExitStack

    from bench._proc import tree_cpu
    from bench._requests import PATH, START_BODY
    from bench._stack import DEPLOYED_THREADS, BenchStack
    from bench._wrk import ensure_wrk, run_wrk

    ensure_wrk()
    stack = BenchStack().start()
    cpu: dict[str, list[float]] = {name: [] for name in names}
    try:
        with ExitStack() as held:
            standin_ = held.enter_context(stack.standin(0, "standin-http-cpu"))
            instances = {
                name: held.enter_context(
                    stack.instance(
                        "start",
                        DEPLOYED_THREADS,
                        standin_.url,
                        {"MISTRAL_HTTP_CLIENT": name},
                    )
                )
                for name in names
            }
            for inst in instances.values():  # warm: threads, connections, caches
                run_wrk(
                    inst.url + PATH,
                    method="POST",
                    body=START_BODY,
                    key=stack.user_key,
                    duration_s=1,
                )
            for round_ in range(runs):
                standin_.reset()
                # Alternate which client goes first, so a drift in the machine's load
                # falls on both alike.
                order = names if round_ % 2 == 0 else names[::-1]
                for name in order:
                    inst = instances[name]
                    before = tree_cpu(inst.pid)
                    gw = run_wrk(
                        inst.url + PATH,
                        method="POST",
                        body=START_BODY,
                        key=stack.user_key,
                        duration_s=seconds,
                    )
                    cpu[name].append((tree_cpu(inst.pid) - before) / max(gw.requests, 1) * 1000)
                    if gw.failed:
                        raise RuntimeError(f"{name}: {gw.failed} failed requests")
    finally:
        stack.stop()
    return cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_cpu")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clients", default=",".join(HTTP_CLIENTS))
    parser.add_argument("--full-start", action="store_true", help="CPU per full start instead")
    parser.add_argument("--seconds", type=float, default=3, help="of each --full-start run")
    args = parser.parse_args(argv)
    names = args.clients.split(",")
    if args.full_start:
        cpu = full_start(names, args.runs, args.seconds)
        first = statistics.median(cpu[names[0]])
        for name in names:
            med = statistics.median(cpu[name])
            # Each round's ratio to the first client in the same round: the machine's load
            # drifts between rounds, much less within one.
            paired = statistics.median(c / f for c, f in zip(cpu[name], cpu[names[0]], strict=True))
            runs = ", ".join(f"{c:.2f}" for c in cpu[name])
            print(
                f"{name:>8}: {med:.3f} ms CPU per start ({med / first - 1:+.1%} on medians, "
                f"{paired - 1:+.1%} median of rounds; runs {runs})"
            )
        return 0
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
