"""Where a start request's CPU goes: py-spy on the start instance's worker under 1-client load.

A separate pass after the measurements (sampling slows the process a little).
Samples are taken only from the thread holding the GIL (`--gil`), so they
count CPU spent in Python, and each is put in the first phase of the request
its stack passes through. Skipped, with a note, when py-spy is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import psutil

from bench._requests import PATH, START_BODY
from bench._stack import DEPLOYED_THREADS, BenchStack
from bench._wrk import run_wrk

__all__ = ["PHASES", "profile_start"]

# (phase, a frame name that marks it), first match wins: order is outer to inner.
PHASES: tuple[tuple[str, str], ...] = (
    ("upstream: history read after the turn", "_TurnRunner._history"),
    ("upstream: the start call", "MistralClient.call"),
    ("database: the turn's transaction", "_TurnRunner._store"),
    ("access log line", "access_log"),
    ("rate limit (Redis script)", "check_limits"),
    ("parse and validate the body", "parse_turn"),
    ("authenticate", "_admit"),
    ("other gateway code", "FunctionApp.__call__"),
    ("Flask and functions-framework", "Flask.__call__"),
    # gunicorn's frames are methods ("ThreadWorker.handle"): its request threads outside
    # the app, and the worker's event loop (accepting, reading, handing to a thread).
    ("gunicorn (request threads outside the app, event loop)", "ThreadWorker.handle"),
    ("gunicorn (request threads outside the app, event loop)", "ThreadWorker.run"),
)


def _py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def _phase(frames: list[str]) -> str:
    names = [f.split(" (")[0] for f in frames]
    for phase, marker in PHASES:
        if any(name.endswith(marker) for name in names):
            return phase
    return "other (idle threads, garbage collection)"


def _package(frame: str) -> str:
    location = frame.rsplit("(", 1)[-1].rstrip(")")
    path = location.rsplit(":", 1)[0]
    if path.startswith("shared/") or "/shared/" in path or path == "main.py":
        return "gateway (shared/)"
    if path.startswith("client/"):
        return "mistralai (the SDK's plumbing)"
    return path.split("/")[0] if "/" in path else path


def profile_start(
    stack: BenchStack, seconds: float = 8, keep: Path | None = None, root: Path | None = None
) -> dict[str, object]:
    """The phases and packages of a start's CPU; `keep` saves py-spy's raw stacks there,
    `root` profiles another copy of the code (`bench.ab.export`)."""
    spy = _py_spy()
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    with (
        stack.standin(0, "standin-profile") as standin,
        stack.instance("start", DEPLOYED_THREADS, standin.url, None, root) as inst,
    ):
        url = inst.url + PATH
        run_wrk(url, method="POST", body=START_BODY, key=stack.user_key, duration_s=1)
        worker = psutil.Process(inst.pid).children()[0].pid
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "profile.txt"
            load = threading.Thread(
                target=run_wrk,
                args=(url,),
                kwargs={
                    "method": "POST",
                    "body": START_BODY,
                    "key": stack.user_key,
                    "duration_s": seconds + 2,
                },
            )
            load.start()
            done = subprocess.run(
                [spy, "record", "-p", str(worker), "-r", "250", "-d", str(int(seconds)), "--gil"]
                + ["-f", "raw", "-o", str(out)],
                capture_output=True,
                text=True,
                check=False,
            )
            load.join()
            if done.returncode != 0 or not out.exists():
                return {"skipped": f"py-spy failed: {done.stderr.strip()[-300:]}"}
            lines = out.read_text().splitlines()
            if keep is not None:
                keep.write_text(out.read_text())
    phases: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in lines:
        if not line.strip():
            continue
        stack_text, count = line.rsplit(" ", 1)
        frames = stack_text.split(";")
        n = int(count)
        total += n
        phases[_phase(frames)] += n
        packages[_package(frames[-1])] += n
    return {
        "samples": total,
        "phases": [(k, round(100 * v / total, 1)) for k, v in phases.most_common()],
        "packages": [(k, round(100 * v / total, 1)) for k, v in packages.most_common(12)],
    }
