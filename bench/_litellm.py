"""The gateway beside LiteLLM's proxy, in one run, in front of the same stand-in.

    .venv/bin/python -m bench --only litellm

LiteLLM is installed pinned (`LITELLM`) in a virtual environment of its own,
`.local/litellm-venv`, made on first use with the registry's ordinary client (pip), never
in the project's `.venv`. When it cannot be built the row says why and is skipped.

One stand-in at 0 ms serves both. LiteLLM's proxy (its `litellm` command: uvicorn, one
worker, a master key, no database) forwards `POST /mistral/v1/conversations`, its Mistral
pass-through, to the stand-in: the same conversations.start request the gateway serves
at `POST /v1/conversations`, the same body, one wrk client. LiteLLM checks its key and
relays; the gateway also checks the key's rate limit in Redis, reads Mistral's history
of the conversation, stores the turn and its usage in PostgreSQL and writes its access
line. In each round (the order alternates) the gateway, then LiteLLM, then the floor
(straight to the stand-in, paced to the slower of the two) run for the same time; CPU
per request is each server's process tree's CPU seconds over its requests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._proc import ROOT, port, spawn, stop, tree_cpu, wait_http
from bench._requests import PATH, START_BODY
from bench._result import Row, fmt_ms
from bench._stack import DEPLOYED_THREADS, BenchStack
from bench._stats import median
from bench._wrk import run_wrk
from devstack.stack import STANDIN_KEY

__all__ = ["LITELLM", "VENV", "ensure_litellm", "litellm_rows"]

# The release measured: pinned, so a change in the figure is a change in one of the two.
# (1.108.5: newer releases' `proxy` extra needs packages the registry does not serve.)
LITELLM = "1.108.5"
VENV = ROOT / ".local" / "litellm-venv"
_MASTER_KEY = "sk-bench-litellm"
_CONFIG = f"""\
model_list:
  - model_name: mistral-small-latest
    litellm_params:
      model: mistral/mistral-small-latest
general_settings:
  master_key: {_MASTER_KEY}
litellm_settings:
  telemetry: false
"""


def _installed() -> str | None:
    python = VENV / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_litellm() -> tuple[Path | None, str]:
    """LiteLLM's `litellm` command in its own venv (built on first use), or None and why."""
    if _installed() != LITELLM:
        print(f"bench: installing litellm[proxy]=={LITELLM} into {VENV}", flush=True)
        shutil.rmtree(VENV, ignore_errors=True)
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(VENV)], capture_output=True, text=True, check=False
        )
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        done = made.returncode == 0 and (
            subprocess.run(
                [*pip, "--disable-pip-version-check", f"litellm[proxy]=={LITELLM}"],
                capture_output=True,
                text=True,
                check=False,
            ).returncode
            == 0
        )
        if not done or _installed() != LITELLM:
            return None, f"litellm[proxy]=={LITELLM} could not be installed into {VENV} with pip"
    command = VENV / "bin" / "litellm"
    if not command.exists():
        return None, f"{command} is missing after installing litellm[proxy]=={LITELLM}"
    return command, f"litellm {LITELLM}"


def _spawn_litellm(stack: BenchStack, command: Path, standin_url: str) -> tuple[Any, str]:
    config = stack.state_dir / "litellm.yaml"
    config.write_text(_CONFIG)
    listen = port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),  # noqa: S108
        "MISTRAL_API_BASE": standin_url,
        "MISTRAL_API_KEY": STANDIN_KEY,
        # Its model price map from the package, not fetched from the network at start.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    args = [str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(listen)]
    proc = spawn([*args, "--num_workers", "1"], env, stack.state_dir / "litellm.log")
    url = f"http://127.0.0.1:{listen}"
    wait_http(url + "/health/liveliness", proc, timeout_s=120, poll_s=0.25)
    return proc, url


def litellm_rows(stack: BenchStack, runs: int = 3, seconds: float = 5) -> list[Row]:
    command, why = ensure_litellm()
    scenario = (
        "Beside LiteLLM (proxy, one worker, its Mistral pass-through), same stand-in at 0 ms, "
        "1 client, one run: CPU per request and added p50"
    )
    if command is None:
        return [Row(scenario=scenario, target="gateway CPU per start <= LiteLLM's", measured="-",
                    note=f"skipped: {why}")]  # fmt: skip
    rounds: list[dict[str, Any]] = []
    with stack.standin(0, "standin-litellm") as standin:
        litellm_proc, litellm_url = _spawn_litellm(stack, command, standin.url)
        try:
            with stack.instance("start", DEPLOYED_THREADS, standin.url) as inst:
                servers = {
                    "gateway": (inst.pid, inst.url + PATH, stack.user_key),
                    "litellm": (litellm_proc.pid, litellm_url + "/mistral" + PATH, _MASTER_KEY),
                }
                for _, url, key in servers.values():  # warm
                    run_wrk(url, method="POST", body=START_BODY, key=key, duration_s=2)
                for round_ in range(runs):
                    standin.reset()
                    figures: dict[str, Any] = {}
                    order = ["gateway", "litellm"] if round_ % 2 == 0 else ["litellm", "gateway"]
                    for name in order:
                        pid, url, key = servers[name]
                        before = tree_cpu(pid)
                        got = run_wrk(
                            url, method="POST", body=START_BODY, key=key, duration_s=seconds
                        )
                        figures[name] = {
                            **got.as_dict(),
                            "cpu_ms_per_request": round(
                                (tree_cpu(pid) - before) / max(got.requests, 1) * 1000, 3
                            ),
                        }
                    slower = max(f["latency_ms"]["mean"] for f in figures.values())
                    floor = run_wrk(
                        standin.url + PATH,
                        method="POST",
                        body=START_BODY,
                        key=STANDIN_KEY,
                        duration_s=seconds,
                        delay_ms=max(0, round(slower - 0.5)),
                    )
                    figures["floor"] = floor.as_dict()
                    for name in servers:
                        figures[name]["added_p50_ms"] = round(
                            figures[name]["latency_ms"]["p50"] - floor.latency_ms["p50"], 3
                        )
                    rounds.append(figures)
        finally:
            stop(litellm_proc)
            time.sleep(0.2)
    return [_row(scenario, rounds)]


def _row(scenario: str, rounds: list[dict[str, Any]]) -> Row:
    def med(name: str, key: str) -> float:
        return median([r[name][key] for r in rounds])

    cpu_gw, cpu_ll = med("gateway", "cpu_ms_per_request"), med("litellm", "cpu_ms_per_request")
    add_gw, add_ll = med("gateway", "added_p50_ms"), med("litellm", "added_p50_ms")
    failed = sum(r[n]["errors"][k] for r in rounds for n in ("gateway", "litellm", "floor")
                 for k in r[n]["errors"])  # fmt: skip
    cpu_ratio = median(
        [r["gateway"]["cpu_ms_per_request"] / r["litellm"]["cpu_ms_per_request"] for r in rounds]
    )
    return Row(
        scenario=scenario,
        target="gateway CPU per start <= LiteLLM's",
        measured=f"CPU per request: gateway {cpu_gw:.2f} ms, LiteLLM {cpu_ll:.2f} ms; added p50: "
        f"gateway {fmt_ms(add_gw)}, LiteLLM {fmt_ms(add_ll)}",
        floor=f"p50 {fmt_ms(median([r['floor']['latency_ms']['p50'] for r in rounds]))}",
        ratio=f"CPU x{cpu_ratio:.2f}, added p50 x{add_gw / add_ll:.2f}" if add_ll else "-",
        passed=failed == 0 and cpu_gw <= cpu_ll,
        note=f"litellm[proxy]=={LITELLM} in {VENV.relative_to(ROOT)}; median of {len(rounds)} "
        f"rounds of each, order alternating; ratios gateway / LiteLLM (CPU: median of the "
        f"rounds' ratios); {failed} failed requests; the gateway does more per request "
        f"(rate limit, history read, stored turn, access line)",
        runs=rounds,
    )
