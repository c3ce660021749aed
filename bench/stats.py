"""Percentiles and rounding for the report."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary_ms(values_seconds: Sequence[float]) -> dict[str, float]:
    """count, p50, p90, p99, max and mean in milliseconds."""
    ordered = sorted(values_seconds)
    if not ordered:
        return {"count": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
    return {
        "count": len(ordered),
        "p50": round(1000 * percentile(ordered, 50), 2),
        "p90": round(1000 * percentile(ordered, 90), 2),
        "p99": round(1000 * percentile(ordered, 99), 2),
        "max": round(1000 * ordered[-1], 2),
        "mean": round(1000 * sum(ordered) / len(ordered), 2),
    }
