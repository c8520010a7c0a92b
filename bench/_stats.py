"""Percentiles and medians over runs: the only arithmetic the report needs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = ["median", "percentile", "ratio"]


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (nearest rank, as wrk and HdrHistogram report it)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def ratio(value: float, floor: float) -> float:
    return value / floor if floor else math.nan
