"""What a scenario hands the report: one row per target, and the runs behind it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Row", "fmt_ms"]


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    target: str
    measured: str
    floor: str = "-"
    ratio: str = "-"
    # True met, False missed, None not judged (for information, or not measured).
    passed: bool | None = None
    note: str = ""
    # Per-run figures, for the details section.
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info" if self.target in ("-", "") else "not measured"
        return "pass" if self.passed else "**miss**"


def fmt_ms(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f} ms"
