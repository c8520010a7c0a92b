"""CPU per full start of one version of the code against another, in the same run.

    .venv/bin/python -m bench.ab                      HEAD against the work tree
    .venv/bin/python -m bench.ab --base 32a8736 --runs 9 --seconds 3
    .venv/bin/python -m bench.ab --base work --b-env GC_FREEZE=0   one tree, two settings
    .venv/bin/python -m bench.ab --scenario entries       a history page instead (seeded)
    .venv/bin/python -m bench.ab --scenario passthrough   a metered chat call instead
    .venv/bin/python -m bench.ab --base work --b-python .local/pgo-venv/bin/python
                                                       the same code on another interpreter

The bench stack (`bench._stack.BenchStack`), one stand-in at 0 ms and two start
instances as deployed (THREADS, DB_POOL_SIZE from Terraform): A runs the code of
`--base` (a commit exported with `git archive` into `.local/ab/<commit>`, or the work
tree itself with `--base work`), B the work tree. `--scenario entries` (or `conversations`) compares
two history instances on the history scenario's seeded pages (`bench._history`) instead;
`--scenario passthrough` two start instances on a metered chat call (issue 19).
In each round one wrk client sends
full starts to A, then B (the order alternates round by round, so a drift in the
shared machine's load falls on both alike) for `--seconds`, while the instance's
CPU seconds (gunicorn master + worker, user + system) are counted. Prints each
side's median CPU per start, the median of the per-round ratios B/A, and each side's
median latency. Not a test: figures depend on the machine; this is how each change
in bench/RESULTS.md was measured against the one before it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench._proc import ROOT, tree_cpu
from bench._requests import CHAT_BODY, CHAT_PATH, PATH, START_BODY
from bench._stack import DEPLOYED_THREADS, DEPLOYED_THREADS_BY_FUNCTION, BenchStack
from bench._wrk import ensure_wrk, run_wrk


def export(rev: str) -> Path:
    """The tree of commit `rev`, exported once into `.local/ab/<commit>`."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", rev + "^{commit}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = ROOT / ".local" / "ab" / commit[:12]
    if not (target / "functions").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.Popen(["git", "archive", commit], cwd=ROOT, stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(target)], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {commit} failed")
    return target


def _env(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def _target(stack: BenchStack, scenario: str) -> tuple[str, str, str, int, Any]:
    """(function, path, key, THREADS, body) of what each round sends."""
    if scenario == "start":
        return "start", PATH, stack.user_key, DEPLOYED_THREADS, START_BODY
    if scenario == "passthrough":
        return "start", CHAT_PATH, stack.user_key, DEPLOYED_THREADS, CHAT_BODY
    from bench import _history

    assert stack.info is not None
    _history.seed(stack.info.database_url)
    key = stack.create_key("bench ab reader", owner=_history.TENANT, role="read_only")
    path = {
        "entries": f"/gateway/v1/conversations/{_history.BIG}/entries?limit=100",
        "conversations": "/gateway/v1/conversations?limit=100",
    }[scenario]
    return "history", path, key, DEPLOYED_THREADS_BY_FUNCTION["history"], None


def compare(
    base: Path | None,
    a_env: dict[str, str],
    b_env: dict[str, str],
    runs: int,
    seconds: float,
    clients: int = 1,
    scenario: str = "start",
    b_python: str | None = None,
) -> dict[str, dict[str, list[float]]]:
    ensure_wrk()
    stack = BenchStack().start()
    out: dict[str, dict[str, list[float]]] = {
        side: {"cpu_ms": [], "p50_ms": [], "p99_ms": []} for side in "AB"
    }
    try:
        function, path, key, threads, body = _target(stack, scenario)
        method = "GET" if body is None else "POST"
        with ExitStack() as held:
            standin = held.enter_context(stack.standin(0, "standin-ab"))
            instances = {
                "A": held.enter_context(
                    stack.instance(function, threads, standin.url, a_env, base)
                ),
                "B": held.enter_context(
                    stack.instance(function, threads, standin.url, b_env, None, b_python)
                ),
            }
            url = {side: inst.url + path for side, inst in instances.items()}
            for side in "AB":  # warm: threads, connections, caches, the frozen heap
                run_wrk(url[side], method=method, body=body, key=key, duration_s=2)
            for round_ in range(runs):
                standin.reset()
                for side in "AB" if round_ % 2 == 0 else "BA":
                    pid = instances[side].pid
                    before = tree_cpu(pid)
                    gw = run_wrk(
                        url[side],
                        method=method,
                        body=body,
                        key=key,
                        connections=clients,
                        duration_s=seconds,
                    )
                    if gw.failed:
                        raise RuntimeError(f"{side}: {gw.failed} failed requests")
                    out[side]["cpu_ms"].append((tree_cpu(pid) - before) / gw.requests * 1000)
                    out[side]["p50_ms"].append(gw.latency_ms["p50"])
                    out[side]["p99_ms"].append(gw.latency_ms["p99"])
    finally:
        stack.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    parser.add_argument("--base", default="HEAD", help="a commit, or `work` for the work tree")
    parser.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--b-python", help="B's interpreter (a venv's python with requirements.txt installed)"
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument(
        "--scenario", choices=("start", "passthrough", "entries", "conversations"), default="start"
    )
    args = parser.parse_args(argv)
    base = None if args.base == "work" else export(args.base)
    result = compare(
        base,
        _env(args.a_env),
        _env(args.b_env),
        args.runs,
        args.seconds,
        args.clients,
        args.scenario,
        args.b_python,
    )
    a, b = result["A"], result["B"]
    ratio = statistics.median(y / x for x, y in zip(a["cpu_ms"], b["cpu_ms"], strict=True))
    b_name = "work tree" + (f" on {args.b_python}" if args.b_python else "")
    print(f"A = {args.base} {' '.join(args.a_env)}; B = {b_name} {' '.join(args.b_env)}")
    for side, r in result.items():
        runs = ", ".join(f"{c:.3f}" for c in r["cpu_ms"])
        print(
            f"{side}: {statistics.median(r['cpu_ms']):.3f} ms CPU per request "
            f"(p50 {statistics.median(r['p50_ms']):.2f} ms, p99 "
            f"{statistics.median(r['p99_ms']):.2f} ms; runs {runs})"
        )
    print(f"B/A: {ratio - 1:+.1%} (median of {len(a['cpu_ms'])} paired rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
