"""`make bench`: the benchmark suite of issue 11, end to end, into `bench/RESULTS.md`.

    python -m bench                   every scenario (about 7 minutes on 2 cores)
    python -m bench --quick           every scenario, short and small (a smoke run)
    python -m bench --only latency,history
    python -m bench --out /tmp/r.md   write the report elsewhere

Scenarios: latency (added latency and CPU of a start), concurrency (300
clients at 1 s), streams (300 concurrent streams, and memory), history,
console (first paint of the web console's pages on the history data), ratelimit,
batch, coldstart, passthrough (a metered chat call's added latency and CPU, and 300
concurrent chat streams), litellm (LiteLLM's proxy beside the gateway, in its own venv,
built on first use), profile (py-spy, if installed).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench._proc import ROOT, child_env
from bench._result import Row
from bench._stats import median

SCENARIOS = (
    "latency",
    "concurrency",
    "streams",
    "history",
    "console",
    "ratelimit",
    "batch",
    "coldstart",
    "passthrough",
    "litellm",
    "profile",
)


def _ratelimit_rows(redis_url: str, runs: int, seconds: float) -> list[Row]:
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-m", "bench.ratelimit_loop", redis_url, "--seconds", str(seconds)],
            env=child_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON "))
        results.append(json.loads(line.removeprefix("BENCH_JSON ")))
    rate = median([r["rate"] for r in results])
    low = min(r["rate"] for r in results)
    return [
        Row(
            scenario="Rate-limit check alone (`RateLimiter.check`, one EVALSHA), one client, "
            "the stack's Valkey",
            target=">= 5,000 checks/s",
            measured=f"{rate:,.0f} checks/s (lowest run {low:,.0f}); "
            f"{median([r['cpu_us'] for r in results]):.1f} µs of CPU per check",
            passed=rate >= 5000 and all(r["refused"] == 0 for r in results),
            note=f"median of {runs} runs of {seconds:g} s; a Python loop in its own process",
            runs=results,
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, for trying the suite")
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    chosen = set(args.only.split(",")) if args.only else set(SCENARIOS)
    unknown = chosen - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    # The router runs in this process; its per-request lines would drown the progress.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from bench import (
        _batch,
        _coldstart,
        _console,
        _history,
        _litellm,
        _profile,
        _requests,
        _streams,
    )
    from bench._report import load_average, machine_facts, tool_versions, write_report
    from bench._stack import BenchStack
    from bench._wrk import ensure_wrk

    started = time.monotonic()
    ensure_wrk()
    quick = args.quick
    request_settings = (
        _requests.Settings(
            runs=1, latency_run_s=2, concurrency_runs=1, concurrency_run_s=3, clients=60
        )
        if quick
        else _requests.Settings()
    )
    stream_settings = (
        _streams.StreamSettings(runs=1, clients=50, events=200, duration_s=3, latency_ms=1000)
        if quick
        else _streams.StreamSettings()
    )
    stream_extra = None if quick else _streams.StreamSettings(runs=1, duration_s=5, latency_ms=1000)
    load_start = load_average()
    stack = BenchStack().start()
    assert stack.info is not None
    print(f"bench: stack up in {time.monotonic() - started:.0f} s", flush=True)
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("latency", lambda: _requests.start_latency_rows(stack, request_settings)),
        ("concurrency", lambda: _requests.concurrency_rows(stack, request_settings)),
        ("streams", lambda: _streams.stream_rows(stack, stream_settings, stream_extra)),
        ("history", lambda: _history.history_rows(stack, runs=1 if quick else 3, run_s=2)),
        ("console", lambda: _console.console_rows(stack, runs=1 if quick else 5)),
        (
            "ratelimit",
            lambda: _ratelimit_rows(
                stack.info.redis_url if stack.info else "", 1 if quick else 3, 2
            ),
        ),
        ("batch", lambda: _batch.batch_rows(stack)),
        ("coldstart", lambda: _coldstart.cold_start_rows(stack, runs=1 if quick else 3)),
        (
            "passthrough",
            lambda: (
                _requests.passthrough_latency_rows(stack, request_settings)
                + _streams.passthrough_stream_rows(stack, stream_settings)
            ),
        ),
        ("litellm", lambda: _litellm.litellm_rows(stack, runs=1 if quick else 5, seconds=5)),
    ]
    rows: list[Row] = []
    errors: dict[str, str] = {}
    profile = None
    try:
        facts_extra = tool_versions(stack.info.database_url)
        for name, step in steps:
            if name not in chosen:
                continue
            began = time.monotonic()
            try:
                rows.extend(step())
            except Exception as exc:
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
            print(f"bench: {name} done in {time.monotonic() - began:.0f} s", flush=True)
        if "profile" in chosen:
            profile = _profile.profile_start(stack, seconds=4 if quick else 8)
    finally:
        stack.stop()
    facts = machine_facts(
        {
            **{k: v for k, v in facts_extra.items()},
            "Load average (other processes share the machine)": f"at start {load_start}; "
            f"at end {load_average()}",
        }
    )
    elapsed = time.monotonic() - started
    write_report(args.out, rows, facts, profile, errors, elapsed)
    print(f"bench: wrote {args.out} in {elapsed / 60:.1f} min", flush=True)
    for row in rows:
        print(f"  [{row.verdict:>12}] {row.scenario[:70]}: {row.measured}")
    for name, error in errors.items():
        print(f"  [       error] {name}: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
