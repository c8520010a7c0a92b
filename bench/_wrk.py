"""wrk, the load generator of every request/response scenario, run as its own process.

`ensure_wrk()` installs Debian's `wrk` package when it is missing (a fresh
machine: root, apt-get), so `make bench` needs nothing installed by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkResult", "ensure_wrk", "run_wrk", "wrk_version"]

_SCRIPT = Path(__file__).with_name("wrk_report.lua")


def ensure_wrk() -> str:
    """The wrk binary, installed with apt-get first if this machine lacks it."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError("wrk is not installed and apt-get is not available: install wrk")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    print("bench: installing wrk with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, apt, "install", "-y", "-qq", "wrk"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run([*sudo, apt, "update", "-qq"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("apt-get installed wrk but it is not on PATH")
    return found


def wrk_version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()
    return first[0].split(" [")[0] if first else "wrk"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: dict[str, int]
    latency_ms: dict[str, float]  # min, max, mean, p50, p90, p99, p99.9

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rate": round(self.rate, 1),
            "errors": self.errors,
            "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()},
        }


def run_wrk(
    url: str,
    *,
    method: str = "GET",
    body: object = None,
    key: str | None = None,
    connections: int = 1,
    threads: int = 1,
    duration_s: float = 5,
    timeout_s: float = 10,
    delay_ms: float = 0,
    stagger_ms: float = 0,
) -> WrkResult:
    """One wrk run: `connections` clients in a closed loop for `duration_s`.

    `stagger_ms` spreads the clients' first requests evenly over that time (wrk starts
    every connection at once otherwise), so they arrive as independent clients do.
    """
    wrk_threads = min(threads, connections)
    env = {
        **os.environ,
        "BENCH_METHOD": method,
        "BENCH_BODY": json.dumps(body, separators=(",", ":")) if body is not None else "",
        "BENCH_KEY": key or "",
        "BENCH_DELAY_MS": f"{delay_ms:.3f}" if delay_ms > 0 else "0",
        "BENCH_STAGGER_MS": f"{stagger_ms:.3f}" if stagger_ms > 0 else "0",
        # wrk deals connections evenly to its threads; each thread staggers its own.
        "BENCH_FIRSTS": str(-(-connections // wrk_threads)),
    }
    args = [
        "wrk",
        f"-t{wrk_threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(_SCRIPT),
        url,
    ]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    latency = {k: v / 1000 for k, v in raw["latency_us"].items()}
    return WrkResult(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        errors=raw["errors"],
        latency_ms=latency,
    )
