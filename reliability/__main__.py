"""`python -m reliability`: run the fault, attack and soak suites (and the long fuzz,
when asked), then write docs/RELIABILITY.md from what they measured.

    python -m reliability                       suites + a 180 s soak, then the document
    python -m reliability --fuzz                also `make fuzz`, when that target exists
    python -m reliability --soak-seconds 60     a shorter soak
    python -m reliability --render-only RUN     rewrite the document from a kept run

Each suite is a pytest run with RELIABILITY_FIGURES pointing at one JSON file, into
which the suites merge their figures; junit XML gives each test's outcome. Both are
kept under .local/reliability/<timestamp>/ for `--render-only`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from reliability.figures import ENV_VAR
from reliability.report import SuiteRun, render

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "RELIABILITY.md"
FUZZ_SUMMARY = ROOT / "bench" / "fuzz-summary.json"


def _pytest(name: str, paths: list[str], run_dir: Path, env: dict[str, str]) -> SuiteRun:
    junit = run_dir / f"{name}.xml"
    started = time.monotonic()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            *paths,
        ],
        cwd=ROOT,
        env={**os.environ, **env, ENV_VAR: str(run_dir / "figures.json")},
        check=False,
    )
    return SuiteRun(name, paths, completed.returncode, time.monotonic() - started, junit)


def _fuzz(run_dir: Path) -> dict[str, object]:
    """`make fuzz`, if the Makefile has it: its exit status, log tail and summary."""
    probe = subprocess.run(
        ["make", "-n", "fuzz"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return {"ran": False, "reason": "no `fuzz` make target in this checkout"}
    started = time.monotonic()
    log = run_dir / "fuzz.log"
    with log.open("w") as out:
        completed = subprocess.run(
            ["make", "--no-print-directory", "fuzz"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    summary = json.loads(FUZZ_SUMMARY.read_text()) if FUZZ_SUMMARY.exists() else None
    return {
        "ran": True,
        "status": completed.returncode,
        "seconds": round(time.monotonic() - started),
        "tail": log.read_text(errors="replace").splitlines()[-15:],
        "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--soak-seconds", type=float, default=180.0)
    parser.add_argument("--soak-rate", type=float, default=20.0)
    parser.add_argument("--skip-soak", action="store_true")
    parser.add_argument("--fuzz", action="store_true", help="run `make fuzz` first, if present")
    parser.add_argument("--render-only", type=Path, help="a kept run directory to render")
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args(argv)

    if args.render_only:
        run_dir = args.render_only.resolve()
        runs = [SuiteRun.load(p) for p in sorted(run_dir.glob("*.run.json"))]
        fuzz = json.loads((run_dir / "fuzz.json").read_text())
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        run_dir = ROOT / ".local" / "reliability" / stamp
        run_dir.mkdir(parents=True, exist_ok=True)
        fuzz = _fuzz(run_dir) if args.fuzz else {"ran": False, "reason": "not asked (--fuzz)"}
        (run_dir / "fuzz.json").write_text(json.dumps(fuzz, indent=2))
        runs = [_pytest("faults-and-attacks", ["tests/reliability"], run_dir, {})]
        if not args.skip_soak:
            soak_env = {
                "GATEWAY_SOAK": "1",
                "GATEWAY_SOAK_SECONDS": str(args.soak_seconds),
                "GATEWAY_SOAK_RATE": str(args.soak_rate),
            }
            runs.append(_pytest("soak", ["tests/soak"], run_dir, soak_env))
        for run in runs:
            run.save(run_dir / f"{run.name}.run.json")
    figures_path = run_dir / "figures.json"
    figures = json.loads(figures_path.read_text()) if figures_path.exists() else {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(runs, figures, fuzz, ROOT, run_dir.name))
    print(f"wrote {args.out.relative_to(ROOT)} from {run_dir.relative_to(ROOT)}")
    failed = [r.name for r in runs if r.returncode != 0]
    if fuzz.get("ran") and fuzz.get("status"):
        failed.append("fuzz")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
