"""Figures over repeated runs: percentiles, median with min and max, and when not to trust them."""

from __future__ import annotations

import math
import statistics
from typing import Any

NOISY = 1.5  # runs whose max exceeds this times their min make a verdict doubtful


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def spread(values: list[float]) -> dict[str, Any]:
    """Median with min and max over repeated runs."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "runs": values}  # fmt: skip


def fmt(s: dict[str, Any] | None, scale: float = 1.0, digits: int = 1) -> str:
    if not s:
        return "-"
    m, lo, hi = (s[k] * scale for k in ("median", "min", "max"))
    if s["n"] == 1:
        return f"{m:.{digits}f} (n=1)"
    return f"{m:.{digits}f} [{lo:.{digits}f}-{hi:.{digits}f}]"


def caveat(inputs: list[dict]) -> str:
    """Why a verdict may be down to the machine rather than the code: too few runs, or runs
    that disagree (max over NOISY x min), as when other processes share the cores."""
    if any(s["n"] == 1 for s in inputs):
        return "single run"
    if any(s["max"] > NOISY * s["min"] for s in inputs):
        return "noisy runs"
    return ""
