"""Scenarios of full start requests, each against its floor in the same run (wrk).

    added latency   1 client, stand-in at 0 ms, one start instance on its own port
                    (the deployed shape) and, for information, through the router
    CPU             CPU seconds of that instance's processes / requests, same runs
    300 clients     stand-in at 1 s, one instance: THREADS as deployed (80) and 300

The floor of each run is the same request sent straight to the stand-in by the
same wrk settings; at 1 client it is paced to the gateway run's request rate,
so both see the stand-in under the same load (flat out, the stand-in's own
garbage collection pauses at ~8,000 requests/s would inflate the floor's tail).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench._proc import ROOT, child_env, port, spawn, stop, tree_cpu, wait_port
from bench._result import Row, fmt_ms
from bench._stack import DEPLOYED_THREADS, MODEL, BenchStack, Instance
from bench._stats import median
from bench._wrk import WrkResult, run_wrk
from devstack.stack import STANDIN_KEY, function_command

__all__ = ["Settings", "concurrency_rows", "passthrough_latency_rows", "start_latency_rows"]

PATH = "/v1/conversations"
START_BODY: dict[str, Any] = {
    "model": MODEL,
    "inputs": "Hello, gateway: a benchmark request.",
    "completion_args": {"max_tokens": 16},
}

CHAT_PATH = "/v1/chat/completions"
CHAT_BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Hello, gateway: a benchmark request."}],
    "max_tokens": 16,
}


@dataclass(frozen=True)
class Settings:
    runs: int = 3
    latency_run_s: float = 5
    concurrency_runs: int = 2
    concurrency_run_s: float = 10
    clients: int = 300


def _added(gw: WrkResult, floor: WrkResult, p: str) -> float:
    return gw.latency_ms[p] - floor.latency_ms[p]


def start_latency_rows(stack: BenchStack, s: Settings) -> list[Row]:
    return _latency_rows(_latency_runs(stack, s, PATH, START_BODY, empty_floor=True))


def passthrough_latency_rows(stack: BenchStack, s: Settings) -> list[Row]:
    """A metered pass-through chat call (issue 19) against its floor, as the start above."""
    runs = _latency_runs(stack, s, CHAT_PATH, CHAT_BODY)

    def med(key: str) -> float:
        return median([r[key] for r in runs])

    def lat(which: str, p: str) -> float:
        return median([r[which]["latency_ms"][p] for r in runs])

    added50, added99 = med("added_p50_ms"), med("added_p99_ms")
    failed = sum(r["failed"] for r in runs)
    cpu = med("cpu_ms_per_request")
    cpus = sorted(r["cpu_ms_per_request"] for r in runs)
    return [
        Row(
            scenario="Added latency of a pass-through chat call (chat.complete), 1 client, "
            f"stand-in at 0 ms (start instance on its own port, THREADS={DEPLOYED_THREADS})",
            target="p50 <= 1 ms",
            measured=f"added p50 {fmt_ms(added50)}, p99 {fmt_ms(added99)} (gateway p50 "
            f"{fmt_ms(lat('gateway', 'p50'))}, p99 {fmt_ms(lat('gateway', 'p99'))})",
            floor=f"p50 {fmt_ms(lat('floor', 'p50'))}, p99 {fmt_ms(lat('floor', 'p99'))}",
            ratio=f"p50 x{lat('gateway', 'p50') / lat('floor', 'p50'):.1f}",
            passed=failed == 0 and added50 <= 1,
            note=f"median of {len(runs)} runs; {failed} failed requests",
            runs=runs,
        ),
        Row(
            scenario="Gateway CPU per pass-through chat call (CPU seconds of the instance's "
            "processes / requests)",
            target="<= 0.8 ms",
            measured=f"{cpu:.2f} ms (runs {', '.join(f'{c:.2f}' for c in cpus)})",
            passed=failed == 0 and cpu <= 0.8,
            note="same runs as the added latency; gunicorn master + worker",
        ),
    ]


def _latency_runs(
    stack: BenchStack, s: Settings, path: str, body: dict[str, Any], *, empty_floor: bool = False
) -> list[dict[str, Any]]:
    """Runs of `path` at 1 client: the instance, the router, and the stand-in as floor;
    with `empty_floor`, also the CPU per request of an empty function served the same way
    (functions-framework's own cost, `bench/empty_function`)."""
    assert stack.info is not None
    runs: list[dict[str, Any]] = []
    with (
        stack.standin(0, "standin-0ms") as standin,
        stack.instance("start", DEPLOYED_THREADS, standin.url) as inst,
        _empty_function(stack, enabled=empty_floor) as empty,
    ):
        direct = inst.url + path
        routed = stack.info.url + path
        floor_url = standin.url + path
        for url, key in ((direct, stack.user_key), (routed, stack.user_key), (floor_url, "x")):
            run_wrk(url, method="POST", body=body, key=key, duration_s=1)
        for _ in range(s.runs):
            standin.reset()
            before = tree_cpu(inst.pid)
            gw = run_wrk(
                direct,
                method="POST",
                body=body,
                key=stack.user_key,
                duration_s=s.latency_run_s,
            )
            cpu_ms = (tree_cpu(inst.pid) - before) / max(gw.requests, 1) * 1000
            pace = max(0, round(gw.latency_ms["mean"] - 0.5))
            floor = run_wrk(
                floor_url,
                method="POST",
                body=body,
                key=STANDIN_KEY,
                duration_s=s.latency_run_s,
                delay_ms=pace,
            )
            router = run_wrk(
                routed,
                method="POST",
                body=body,
                key=stack.user_key,
                duration_s=s.latency_run_s,
            )
            empty_cpu_ms = None
            if empty is not None:
                before = tree_cpu(empty.pid)
                done = run_wrk(empty.url + "/", duration_s=s.latency_run_s)
                empty_cpu_ms = (tree_cpu(empty.pid) - before) / max(done.requests, 1) * 1000
            runs.append(
                {
                    "empty_function_cpu_ms": None
                    if empty_cpu_ms is None
                    else round(empty_cpu_ms, 3),
                    "gateway": gw.as_dict(),
                    "floor": floor.as_dict(),
                    "router": router.as_dict(),
                    "floor_pace_ms": pace,
                    "cpu_ms_per_request": round(cpu_ms, 3),
                    "added_p50_ms": round(_added(gw, floor, "p50"), 3),
                    "added_p99_ms": round(_added(gw, floor, "p99"), 3),
                    "router_added_p50_ms": round(_added(router, floor, "p50"), 3),
                    "router_added_p99_ms": round(_added(router, floor, "p99"), 3),
                    "failed": gw.failed + floor.failed + router.failed,
                }
            )
    return runs


@contextlib.contextmanager
def _empty_function(stack: BenchStack, *, enabled: bool) -> Iterator[Instance | None]:
    """An instance of `bench/empty_function` (THREADS as deployed), or None."""
    if not enabled:
        yield None
        return
    listen = port()
    command = function_command("start", listen)
    command[command.index("--source") + 1] = str(ROOT / "bench" / "empty_function" / "main.py")
    log = stack.state_dir / f"empty-function-{listen}.log"
    proc = spawn(command, child_env({"THREADS": str(DEPLOYED_THREADS)}), log)
    try:
        wait_port(listen, proc)
        url = f"http://127.0.0.1:{listen}"
        run_wrk(url + "/", duration_s=1)
        yield Instance("empty", url, proc, DEPLOYED_THREADS)
    finally:
        stop(proc)


def _latency_rows(runs: list[dict[str, Any]]) -> list[Row]:
    def med(key: str) -> float:
        return median([r[key] for r in runs])

    def lat(which: str, p: str) -> float:
        return median([r[which]["latency_ms"][p] for r in runs])

    added50, added99 = med("added_p50_ms"), med("added_p99_ms")
    failed = sum(r["failed"] for r in runs)
    ok = failed == 0
    latency = Row(
        scenario="Added latency of a full non-streaming start, 1 client, stand-in at 0 ms "
        f"(start instance on its own port, THREADS={DEPLOYED_THREADS})",
        target="p50 <= 3 ms, p99 <= 10 ms",
        measured=f"added p50 {fmt_ms(added50)}, p99 {fmt_ms(added99)} "
        f"(gateway p50 {fmt_ms(lat('gateway', 'p50'))}, p99 {fmt_ms(lat('gateway', 'p99'))})",
        floor=f"p50 {fmt_ms(lat('floor', 'p50'))}, p99 {fmt_ms(lat('floor', 'p99'))}",
        ratio=f"p50 x{lat('gateway', 'p50') / lat('floor', 'p50'):.1f}",
        passed=ok and added50 <= 3 and added99 <= 10,
        note=f"median of {len(runs)} runs; {failed} failed requests",
        runs=runs,
    )
    router = Row(
        scenario="The same through the local router (for information)",
        target="-",
        measured=f"added p50 {fmt_ms(med('router_added_p50_ms'))}, "
        f"p99 {fmt_ms(med('router_added_p99_ms'))}",
        floor=f"p50 {fmt_ms(lat('floor', 'p50'))}",
        ratio=f"p50 x{lat('router', 'p50') / lat('floor', 'p50'):.1f}",
        note="the router is a development tool (werkzeug, one more hop), not the load balancer",
    )
    cpu = med("cpu_ms_per_request")
    cpus = sorted(r["cpu_ms_per_request"] for r in runs)
    empties = [r["empty_function_cpu_ms"] for r in runs if r.get("empty_function_cpu_ms")]
    empty = (
        f"; an empty function served the same way (functions-framework, gunicorn, Flask), "
        f"same runs: {median(empties):.2f} ms"
        if empties
        else ""
    )
    cpu_row = Row(
        scenario="Gateway CPU per full start request (CPU seconds of the instance's processes "
        "/ requests)",
        target="<= 1.0 ms",
        measured=f"{cpu:.2f} ms (runs {', '.join(f'{c:.2f}' for c in cpus)})",
        passed=ok and cpu <= 1.0,
        note="same runs as the added latency; gunicorn master + worker" + empty,
    )
    return [latency, router, cpu_row]


@dataclass(frozen=True)
class _Variant:
    label: str
    threads: int
    generation_only: bool
    runs: int
    # The target's reading: Mistral's latency is generation; a history read generates nothing.
    judged: bool = True
    # False: every client's first request at once (a burst of all of them, each second).
    staggered: bool = True
    # The instance's environment beyond the deployed one (e.g. WORKERS).
    env: dict[str, str] | None = None


def concurrency_rows(stack: BenchStack, s: Settings) -> list[Row]:
    variants = [
        _Variant(
            f"as deployed (THREADS={DEPLOYED_THREADS}), stand-in 1 s on generation"
            " (history reads at 0 ms)",
            DEPLOYED_THREADS,
            True,
            s.concurrency_runs,
        ),
        _Variant(
            f"as deployed (THREADS={DEPLOYED_THREADS}), stand-in 1 s on every call,"
            " history reads too (for information)",
            DEPLOYED_THREADS,
            False,
            1,
            judged=False,
        ),
        _Variant(
            f"as deployed (THREADS={DEPLOYED_THREADS}), stand-in 1 s on generation"
            " (history reads at 0 ms), all clients opened at once (bursts)",
            DEPLOYED_THREADS,
            True,
            s.concurrency_runs,
            staggered=False,
        ),
    ]
    rows = []
    for variant in variants:
        rows.append(_concurrency(stack, s, variant))
    return rows


def _concurrency(stack: BenchStack, s: Settings, v: _Variant) -> Row:
    runs: list[dict[str, Any]] = []
    # Cloud Run gives an instance at most its concurrency (THREADS): s.clients are served by
    # this many instances as deployed, and one is measured with its share.
    instances = -(-s.clients // v.threads)
    clients = min(s.clients, v.threads)
    latency = 0 if v.generation_only else 1000
    with stack.standin(latency, f"standin-{latency}ms") as standin:
        if v.generation_only:
            standin.queue_latency("conversations.start", 1000)
        with stack.instance("start", v.threads, standin.url, v.env) as inst:
            wrk_args: dict[str, Any] = {
                "method": "POST",
                "body": START_BODY,
                "threads": 2,
                "timeout_s": 60,
                # Independent clients, not one burst per second (bench/wrk_report.lua);
                # or, in the burst variant, every connection's first request at once.
                "stagger_ms": 1000 if v.staggered else 0,
            }
            # Warm at full concurrency, as an instance that has been serving (its threads,
            # and their connections to Mistral, PostgreSQL and Redis, exist; cold starts
            # are measured on their own), then wait out the requests a closed-loop client
            # leaves queued in the instance.
            run_wrk(
                inst.url + PATH, key=stack.user_key, connections=clients, duration_s=3, **wrk_args
            )
            standin.drain()
            for _ in range(v.runs):
                # The floor first: the gateway run's leftovers cannot reach it.
                floor = run_wrk(
                    standin.url + PATH,
                    key=STANDIN_KEY,
                    connections=clients,
                    duration_s=s.concurrency_run_s,
                    **wrk_args,
                )
                standin.drain()
                before = tree_cpu(inst.pid)
                gw = run_wrk(
                    inst.url + PATH,
                    key=stack.user_key,
                    connections=clients,
                    duration_s=s.concurrency_run_s,
                    **wrk_args,
                )
                cpu_s = tree_cpu(inst.pid) - before
                standin.drain()
                runs.append(
                    {
                        "gateway": gw.as_dict(),
                        "floor": floor.as_dict(),
                        "throughput_ratio": round(gw.rate / floor.rate, 3) if floor.rate else 0,
                        "added_p99_ms": round(_added(gw, floor, "p99"), 1),
                        "added_p50_ms": round(_added(gw, floor, "p50"), 1),
                        "instance_cpu_cores": round(cpu_s / gw.duration_s, 2),
                        "cpu_ms_per_request": round(cpu_s / max(gw.requests, 1) * 1000, 2),
                        "failed": gw.failed + floor.failed,
                    }
                )
    ratio = median([r["throughput_ratio"] for r in runs])
    added99 = median([r["added_p99_ms"] for r in runs])
    added50 = median([r["added_p50_ms"] for r in runs])
    gw_rate = median([r["gateway"]["rate"] for r in runs])
    floor_rate = median([r["floor"]["rate"] for r in runs])
    cores = median([r["instance_cpu_cores"] for r in runs])
    per_request = median([r["cpu_ms_per_request"] for r in runs])
    failed = sum(r["failed"] for r in runs)
    tail = 50 if v.staggered else 400
    target = f"p99 added <= {tail} ms"
    if v.staggered:
        target = "throughput >= 0.9 x floor; " + target
    shape = (
        "one start instance"
        if instances == 1
        else (f"{instances} start instances, one measured with its {clients} clients")
    )
    return Row(
        scenario=f"{s.clients} concurrent clients, {shape}, {v.label}",
        target=target if v.judged else "-",
        measured=f"{gw_rate:.0f} req/s; added p50 {fmt_ms(added50, 0)}, p99 {fmt_ms(added99, 0)}",
        floor=f"{floor_rate:.0f} req/s",
        ratio=f"x{ratio:.2f}",
        passed=(failed == 0 and (ratio >= 0.9 or not v.staggered) and added99 <= tail)
        if v.judged
        else None,
        note=f"median of {len(runs)} run(s) of {s.concurrency_run_s:.0f} s; {failed} failed; "
        f"the instance used {cores:.2f} CPU cores, {per_request:.1f} ms per request",
        runs=runs,
    )
