"""Figures the suites collect for docs/RELIABILITY.md: what was tried, how often, what held.

Each suite adds to one `Figures` per process: totals (`add`), and one row per fault
or attack scenario (`scenario`) with the answers callers got. When the environment
names a file in `RELIABILITY_FIGURES`, the totals and rows are merged into it at the
end of the run, so `python -m reliability` can gather several runs into one report.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["ENV_VAR", "Figures", "figures", "status_counts"]

ENV_VAR = "RELIABILITY_FIGURES"


def status_counts(statuses: Iterable[int | str]) -> dict[str, int]:
    """{"200": 12, "503": 3, ...}, sorted by status."""
    counts = Counter(str(s) for s in statuses)
    return dict(sorted(counts.items()))


class Figures:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.totals: Counter[str] = Counter()
        self.scenarios: list[dict[str, Any]] = []

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.totals[name] += amount

    def scenario(self, suite: str, name: str, **details: Any) -> None:
        """One row of the report: a fault or attack, and what came of it."""
        with self._lock:
            self.scenarios.append({"suite": suite, "name": name, **details})

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {"totals": dict(self.totals), "scenarios": list(self.scenarios)}

    def dump(self, path: Path | None = None) -> None:
        """Merge into `path` (default: $RELIABILITY_FIGURES; nothing if unset)."""
        target = path or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
        if target is None:
            return
        merged: dict[str, Any] = {"totals": {}, "scenarios": []}
        if target.exists():
            merged = json.loads(target.read_text())
        mine = self.to_json()
        totals = Counter(merged["totals"])
        totals.update(mine["totals"])
        merged["totals"] = dict(totals)
        merged["scenarios"] += mine["scenarios"]
        target.write_text(json.dumps(merged, indent=2, sort_keys=True))


# The process's figures: the pytest suites and the soak write to this one.
figures = Figures()
