"""`make run`'s program, as a newcomer runs it: up, healthy, and gone when stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from tests.support import ROOT


def test_run_serves_every_health_url_and_leaves_no_process(tmp_path: Path) -> None:
    """The stack comes up, every health URL in stack.json answers 200, the printed console URL
    serves the console, SIGTERM stops all."""
    state = tmp_path / "state"
    env = {**os.environ, "PORT": "0", "GATEWAY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.pop("MISTRAL_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        printed = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            printed.append(line)
            if "Ctrl-C" in line or not line:
                break
        info = json.loads((state / "stack.json").read_text())
        assert info["admin_key"].startswith("mgw_")
        assert {"url", "admin_key", "health", "mistral_url", "openapi"} <= set(info)
        assert len(info["health"]) == 4
        for url in info["health"]:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback
                assert answer.status == 200, url
        console = next(line for line in printed if line.startswith("console: ")).split()[1]
        assert console == info["console"] == info["url"] + "/gateway/v1/console"
        with urllib.request.urlopen(console, timeout=5) as answer:  # noqa: S310 - loopback
            assert b"Gateway console" in answer.read()
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 6  # postgres, valkey, stand-in, four functions
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == [], [p.pid for p in alive]
