"""Cold start of each function: a fresh instance, from spawn to the answer of a first real request.

The instance is started exactly as LocalStack starts it (functions-framework's
gunicorn, THREADS as deployed), and the first request is sent as soon as the
port accepts it (polled every 10 ms): the time covers the interpreter, the
imports, gunicorn's fork, the lazily built clients (the SDK's on the first
start) and the request itself. Memory is the instance's PSS (master + worker)
right after. Bytecode caches: `PYTHONDONTWRITEBYTECODE` is dropped for these
instances, so the first run compiles and writes them (as an image build
would) and the later runs read them; each run's figure is listed.

`python -X importtime` of each function's module gives the import profile.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from typing import Any

import psutil

from bench._proc import ROOT, child_env, http, stop
from bench._result import Row
from bench._stack import DEPLOYED_THREADS_BY_FUNCTION, MODEL, BenchStack
from bench._stats import median

__all__ = ["cold_start_rows"]

TARGET_MS = {"history": 700, "start": 1500, "admin": 1500, "batch": 1500}


def _first_request(function: str, stack: BenchStack) -> tuple[str, str, Any, str]:
    if function == "start":
        body = {"model": MODEL, "inputs": "cold start", "completion_args": {"max_tokens": 8}}
        return "POST", "/v1/conversations", body, stack.user_key
    if function == "history":
        return "GET", "/v1/conversations?page_size=20", None, stack.user_key
    if function == "admin":
        return "GET", "/v1/agents", None, stack.user_key
    # The batch function's only route is the Pub/Sub push; its health route reads the
    # database and Redis, as a first message would.
    return "GET", "/gateway/v1/health/batch", None, ""


def _pss_mib(pid: int) -> float:
    total = 0.0
    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss
    return total / 2**20


def _one(stack: BenchStack, function: str) -> dict[str, Any]:
    assert stack.info is not None
    threads = DEPLOYED_THREADS_BY_FUNCTION[function]
    method, path, body, key = _first_request(function, stack)
    env = {"PYTHONDONTWRITEBYTECODE": ""}
    started = time.perf_counter()
    inst = stack.spawn_instance(function, threads, stack.info.mistral_url, env)
    try:
        deadline = started + 60
        status = 0
        while time.perf_counter() < deadline:
            if inst.proc.poll() is not None:
                raise RuntimeError(f"{function} exited with {inst.proc.returncode}")
            try:
                status, _ = http(method, inst.url + path, body, key=key, timeout_s=30)
            except OSError:
                time.sleep(0.01)
                continue
            break
        elapsed_ms = (time.perf_counter() - started) * 1000
        if status != 200:
            raise RuntimeError(f"{function}: first request answered {status}")
        memory = _pss_mib(inst.pid)
        time.sleep(1)
        settled = _pss_mib(inst.pid)
    finally:
        stop(inst.proc)
    return {
        "first_answer_ms": round(elapsed_ms, 1),
        "pss_mib": round(memory, 1),
        "pss_after_1s_mib": round(settled, 1),
    }


def _import_profile(function: str) -> list[tuple[str, float]]:
    """The heaviest top-level imports of the function's module (cumulative ms)."""
    env = child_env({"PYTHONDONTWRITEBYTECODE": ""})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "functions" / function), str(ROOT)])
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import main"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    found: dict[str, float] = {}
    for line in out.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
        if match and not match.group(2).startswith(" "):
            name = match.group(2).strip()
            found[name] = found.get(name, 0.0) + int(match.group(1)) / 1000
    return sorted(found.items(), key=lambda kv: -kv[1])[:6]


def cold_start_rows(stack: BenchStack, runs: int = 3) -> list[Row]:
    rows = []
    for function in ("start", "history", "admin", "batch"):
        results = [_one(stack, function) for _ in range(runs)]
        profile = _import_profile(function)
        first = median([r["first_answer_ms"] for r in results])
        memory = max(r["pss_after_1s_mib"] for r in results)
        limit = TARGET_MS[function]
        per_run = ", ".join(f"{r['first_answer_ms']:.0f}" for r in results)
        heavy = ", ".join(f"{name} {ms:.0f} ms" for name, ms in profile[:4])
        rows.append(
            Row(
                scenario=f"Cold start of `{function}`: spawn to first answered "
                + ("health check" if function == "batch" else "request")
                + ", then idle memory",
                target=f"<= {limit} ms; idle memory <= 150 MiB",
                measured=f"{first:.0f} ms (runs {per_run}); {memory:.0f} MiB",
                passed=first <= limit and memory <= 150,
                note=f"median of {runs}; module imports: {heavy}",
                runs=[{**r, "import_profile_ms": dict(profile)} for r in results],
            )
        )
    return rows
