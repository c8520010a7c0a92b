"""Child processes of the benchmark: spawning, waiting, CPU time and memory."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from devstack.servers import free_port, stop_process
from devstack.stack import spawn, wait_port

__all__ = [
    "ROOT",
    "Cpu",
    "child_env",
    "pg_connect",
    "http",
    "port",
    "spawn",
    "stop",
    "tree_cpu",
    "wait_http",
    "wait_port",
]

ROOT = Path(__file__).resolve().parent.parent


def pg_connect(database_url: str) -> Any:
    """A pg8000 connection to the stack's database (`DATABASE_URL`), with no socket or
    statement timeout: the history seed runs statements of many seconds."""
    import pg8000.native

    parts = urllib.parse.urlsplit(database_url)
    return pg8000.native.Connection(
        parts.username or "postgres",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        database=parts.path.lstrip("/"),
        password=parts.password,
    )


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    stop_process(proc, signal.SIGTERM)


def http(
    method: str,
    url: str,
    body: Any = None,
    key: str | None = None,
    timeout_s: float = 30,
) -> tuple[int, bytes]:
    """One request with urllib (setup and checks only, never a measurement)."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_http(
    url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60, poll_s: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            if http("GET", url, timeout_s=5)[0] == 200:
                return
        time.sleep(poll_s)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s}s")


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


@dataclass(frozen=True)
class Cpu:
    """CPU seconds (user + system) of a process and its children, at one moment."""

    seconds: float

    def __sub__(self, other: Cpu) -> float:
        return self.seconds - other.seconds


def tree_cpu(pid: int) -> Cpu:
    total = 0.0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return Cpu(total)


def port() -> int:
    return free_port()


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **(extra or {})}
