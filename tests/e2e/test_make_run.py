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
from mistralai.client import Mistral

from tests.support import ROOT


def _run(state: Path) -> tuple[subprocess.Popen[str], dict[str, str], list[str]]:
    env = {**os.environ, "PORT": "0", "GATEWAY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    for name in ("DATABASE_URL", "REDIS_URL", "MISTRAL_API_KEY"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    printed = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        printed.append(line)
        if "Ctrl-C" in line or not line:
            break
    return proc, json.loads((state / "stack.json").read_text()), printed


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def test_run_serves_every_health_url_and_leaves_no_process(tmp_path: Path) -> None:
    """The stack comes up, every health URL in stack.json answers 200, SIGTERM stops all;
    started again on the same state, what the gateway lists still works (the stand-in keeps
    its state beside the database's: no 404 on a listed conversation). The printed console
    URL serves the console."""
    state = tmp_path / "state"
    proc, info, printed = _run(state)
    try:
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
        sdk = Mistral(api_key=info["admin_key"], server_url=info["url"])
        agent = sdk.beta.agents.create(model="mistral-small-latest", name="fixed-name")
        started = sdk.beta.conversations.start(agent_id=agent.id, inputs="hello")
    finally:
        _stop(proc)
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == [], [p.pid for p in alive]

    proc, info, _ = _run(state)
    try:
        sdk = Mistral(api_key=info["admin_key"], server_url=info["url"])
        assert started.conversation_id in [c.id for c in sdk.beta.conversations.list()]
        appended = sdk.beta.conversations.append(
            conversation_id=started.conversation_id, inputs="still there?"
        )
        assert appended.outputs
        assert sdk.beta.agents.get(agent_id=agent.id).name == "fixed-name"
        # A fixed-name script's second run: the same name again is a second agent.
        again = sdk.beta.agents.create(model="mistral-small-latest", name="fixed-name")
        assert again.id != agent.id
    finally:
        _stop(proc)
