"""Streaming: 300 concurrent streams of 200 events, against the same streams from the stand-in.

One start instance with THREADS=300 (a gunicorn thread holds each open
stream, so one instance holding 300 streams needs 300 threads). The stand-in
answers a streamed start after `latency_ms` and then sends all its events at
once (it cannot pace them); the history read that follows a turn answers at
once, as a stored read does. The client (`bench.stream_client`, its own
process) keeps each of its 300 clients on one stream after another, checks
every event of every stream, and is paced for the floor to the gateway run's
stream rate. The instance's memory (PSS of its processes, from
/proc/<pid>/smaps_rollup) is sampled while the streams are open.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench._proc import ROOT, child_env
from bench._result import Row, fmt_ms
from bench._stack import BenchStack
from bench._stats import median, percentile
from devstack.stack import STANDIN_KEY

__all__ = ["StreamSettings", "passthrough_stream_rows", "stream_rows"]


@dataclass(frozen=True)
class StreamSettings:
    runs: int = 3
    clients: int = 300
    events: int = 200
    duration_s: float = 8
    # How long each stream is held open before its events: with 300 clients, 4 s means
    # 75 new streams a second (15,000 events/s), about what 300 concurrent answers of
    # 200 tokens each streamed over 4 s are. 1 s (60,000 events/s) is run for information.
    latency_ms: int = 4000
    # "chat": metered pass-through chat streams (issue 19) instead of conversation starts.
    api: str = "conversations"


def _pss_mib(pid: int) -> float:
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            total += int(line.split()[1])
    return total / 1024


class _PssSampler:
    """Peak of the summed PSS of a process tree (gunicorn master + worker), every 100 ms."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak_mib = 0.0
        self.idle_mib = self._sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> float:
        total = 0.0
        for pid in self.pids:
            with contextlib.suppress(OSError):
                total += _pss_mib(pid)
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_mib = max(self.peak_mib, self._sample())

    def __enter__(self) -> _PssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _client(
    url: str, reference: str, key: str, s: StreamSettings, cycle_s: float = 0
) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "bench.stream_client",
        "--url",
        url,
        "--reference",
        reference,
        "--key",
        key,
        "--clients",
        str(s.clients),
        "--events",
        str(s.events),
        "--duration-s",
        str(s.duration_s),
        "--stagger-s",
        str(max(s.latency_ms / 1000, 0.5)),
        "--cycle-s",
        str(cycle_s),
        "--api",
        s.api,
    ]
    out = subprocess.run(
        args, env=child_env(), cwd=ROOT, capture_output=True, text=True, check=False, timeout=300
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"stream client failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
    return result


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    ttfe = result.pop("ttfe_ms")
    total = result.pop("total_ms")
    return {
        **result,
        "ttfe_p50_ms": round(percentile(ttfe, 50), 2),
        "ttfe_p99_ms": round(percentile(ttfe, 99), 2),
        "total_p50_ms": round(percentile(total, 50), 2),
        "total_p99_ms": round(percentile(total, 99), 2),
    }


def stream_rows(
    stack: BenchStack, s: StreamSettings, extra: StreamSettings | None = None
) -> list[Row]:
    """The scenario's row, the same at another hold time (information), and memory."""
    runs = _measure(stack, s)
    rows = [_row(runs, s, judged=True)]
    every = list(runs)
    if extra is not None:
        more = _measure(stack, extra)
        rows.append(_row(more, extra, judged=False))
        every += more
    rows.append(_memory_row(every, s))
    return rows


def passthrough_stream_rows(stack: BenchStack, s: StreamSettings) -> list[Row]:
    """Concurrent metered pass-through chat streams (issue 19), against the stand-in's."""
    return [_row(_measure(stack, replace(s, api="chat")), replace(s, api="chat"), judged=True)]


def _measure(stack: BenchStack, s: StreamSettings) -> list[dict[str, Any]]:
    import psutil

    runs: list[dict[str, Any]] = []
    with (
        stack.standin(0, "standin-streams") as standin,
        stack.instance("start", s.clients, standin.url) as inst,
    ):
        operation = "chat.complete" if s.api == "chat" else "conversations.start"
        standin.queue_latency(operation, s.latency_ms)
        pids = [inst.pid, *(c.pid for c in psutil.Process(inst.pid).children(recursive=True))]
        # Warm the instance (pools, lazy imports) before anything is measured.
        warm = StreamSettings(1, s.clients, s.events, 1, 0, s.api)
        _client(inst.url, standin.url, stack.user_key, warm)
        for _ in range(s.runs):
            standin.reset()
            with _PssSampler(pids) as memory:
                gw = _summary(_client(inst.url, standin.url, stack.user_key, s))
            cycle_s = gw["total_p50_ms"] / 1000
            floor = _summary(_client(standin.url, standin.url, STANDIN_KEY, s, cycle_s))
            runs.append(
                {
                    "gateway": gw,
                    "floor": floor,
                    "added_ttfe_p50_ms": round(gw["ttfe_p50_ms"] - floor["ttfe_p50_ms"], 2),
                    "added_ttfe_p99_ms": round(gw["ttfe_p99_ms"] - floor["ttfe_p99_ms"], 2),
                    "idle_pss_mib": round(memory.idle_mib, 1),
                    "peak_pss_mib": round(memory.peak_mib, 1),
                    "floor_cycle_s": round(cycle_s, 3),
                    "hold_ms": s.latency_ms,
                }
            )
    return runs


def _row(runs: list[dict[str, Any]], s: StreamSettings, judged: bool) -> Row:
    def med(key: str) -> float:
        return median([r[key] for r in runs])

    gw_streams = sum(r["gateway"]["streams"] for r in runs)
    complete = sum(r["gateway"]["complete"] for r in runs)
    lost = sum(r["gateway"]["lost"] for r in runs)
    reordered = sum(r["gateway"]["reordered"] for r in runs)
    errors = sum(sum(r["gateway"]["errors"].values()) for r in runs)
    unstored = sum(r["gateway"].get("unstored", 0) for r in runs)
    error_kinds: dict[str, int] = {}
    for r in runs:
        for kind, count in r["gateway"]["errors"].items():
            error_kinds[kind] = error_kinds.get(kind, 0) + count
    held = max(r["gateway"]["max_in_flight"] for r in runs)
    rate = median([r["gateway"]["streams"] / r["gateway"]["elapsed_s"] for r in runs])
    added50 = med("added_ttfe_p50_ms")
    added99 = med("added_ttfe_p99_ms")
    gw50 = median([r["gateway"]["ttfe_p50_ms"] for r in runs])
    floor50 = median([r["floor"]["ttfe_p50_ms"] for r in runs])
    passed = (
        gw_streams > 0
        and unstored == 0
        and complete == gw_streams
        and lost == 0
        and reordered == 0
        and errors == 0
        and added50 <= 5
    )
    return Row(
        scenario=("Pass-through chat: " if s.api == "chat" else "")
        + f"{s.clients} concurrent streams of {s.events} events each, each held "
        f"{s.latency_ms / 1000:g} s before its events (~{rate:.0f} streams/s), one start "
        f"instance, THREADS={s.clients}" + ("" if judged else " (for information)"),
        target="no event lost or reordered; added time to first event p50 <= 5 ms"
        if judged
        else "-",
        measured=f"{complete}/{gw_streams} streams complete and in order, {lost} lost, "
        f"{reordered} reordered, {errors} refused"
        + (f" ({', '.join(f'{k}: {v}' for k, v in sorted(error_kinds.items()))})" if errors else "")
        + (f", {unstored} not stored" if unstored else "")
        + f"; added TTFE p50 {fmt_ms(added50)}, p99 {fmt_ms(added99)}",
        floor=f"TTFE p50 {fmt_ms(floor50)}",
        ratio=f"TTFE p50 x{gw50 / floor50:.3f}" if floor50 else "-",
        passed=passed if judged else None,
        note=f"median of {len(runs)} run(s) of {s.duration_s:g} s; up to {held} streams open "
        "at once at the client; floor paced to the gateway run's stream rate"
        + ("" if judged else f"; would {'pass' if passed else 'miss'} the target"),
        runs=runs,
    )


def _memory_row(runs: list[dict[str, Any]], s: StreamSettings) -> Row:
    held = max(r["gateway"]["max_in_flight"] for r in runs)
    peak = max(r["peak_pss_mib"] for r in runs)
    idle = min(r["idle_pss_mib"] for r in runs)
    return Row(
        scenario=f"Memory of one instance holding {s.clients} concurrent streams",
        target="<= 300 MiB",
        measured=f"peak {peak:.0f} MiB (PSS, master + worker; {idle:.0f} MiB before)",
        passed=peak <= 300,
        note=f"sampled every 100 ms during the stream runs above; up to {held} streams open",
    )
