"""The batch row: `python -m bench.batch_bench`, written with the batch function, run here.

That module starts its own stand-in (1 s on each conversation start) and batch
function instance, delivers one Pub/Sub push of 1,000 items and times it; it is
pointed at the stack's PostgreSQL and Valkey through DATABASE_URL and REDIS_URL.
This suite reads the lines it prints:

    answer: HTTP 200, status succeeded, counts {...}
    upstream starts: 1000, history fetches: 1000
    measured: 20.93 s   floor: 20.00 s   overhead: +4.6%

and, if it prints one, a last line `BENCH_JSON {"elapsed_s": ..., "floor_s": ...}`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from typing import Any

from bench._proc import ROOT, child_env
from bench._result import Row
from bench._stack import BenchStack

__all__ = ["batch_rows"]

SCENARIO = "Batch: 1,000 items, stand-in at 1 s, bound 50"
TARGET = "<= 22 s (floor 20 s)"
FLOOR_S = 20.0


def batch_rows(stack: BenchStack, timeout_s: float = 240) -> list[Row]:
    assert stack.info is not None
    if importlib.util.find_spec("bench.batch_bench") is None:
        return [
            Row(
                SCENARIO,
                TARGET,
                "pending: bench/batch_bench.py is not in this checkout yet",
                floor=f"{FLOOR_S:g} s",
                note="the batch function's own benchmark is being written with the batch issue",
            )
        ]
    env = child_env({"DATABASE_URL": stack.info.database_url, "REDIS_URL": stack.info.redis_url})
    log = stack.state_dir / "batch_bench.log"
    try:
        out = subprocess.run(
            [sys.executable, "-m", "bench.batch_bench"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [Row(SCENARIO, TARGET, f"timed out after {timeout_s:g} s", passed=False)]
    log.write_text(out.stdout + "\n--- stderr\n" + out.stderr)
    result = _parse(out.stdout)
    if result is None:
        tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
        return [
            Row(
                SCENARIO,
                TARGET,
                f"batch bench failed (exit {out.returncode}): {tail[0][:200]}",
                passed=False,
                note=f"see {log.relative_to(ROOT)}",
            )
        ]
    elapsed = float(result["elapsed_s"])
    floor = float(result.get("floor_s", FLOOR_S))
    complete = result.get("complete", out.returncode == 0 or elapsed > 22)
    return [
        Row(
            SCENARIO,
            TARGET,
            f"{elapsed:.2f} s" + ("" if complete else ", not every item succeeded"),
            floor=f"{floor:g} s",
            ratio=f"x{elapsed / floor:.3f}",
            passed=bool(complete) and elapsed <= 22,
            note="`python -m bench.batch_bench`: one run (a batch takes 20 s); "
            + str(result.get("detail", "")),
            runs=[result],
        )
    ]


def _parse(stdout: str) -> dict[str, Any] | None:
    line = next((x for x in reversed(stdout.splitlines()) if x.startswith("BENCH_JSON ")), None)
    if line is not None:
        parsed: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
        return parsed
    measured = re.search(r"measured: ([\d.]+) s\s+floor: ([\d.]+) s", stdout)
    if measured is None:
        return None
    answer = re.search(r"answer: HTTP (\d+), status (\S+), counts (.*)", stdout)
    calls = re.search(r"upstream starts: (\d+), history fetches: (\d+)", stdout)
    detail = ", ".join(m.group(0) for m in (answer, calls) if m is not None)
    return {
        "elapsed_s": float(measured.group(1)),
        "floor_s": float(measured.group(2)),
        "complete": answer is not None
        and answer.group(1) == "200"
        and "failed': 0" in detail
        or (answer is not None and "'succeeded': 1000" in answer.group(3)),
        "detail": detail,
    }
