"""Percentiles, slopes and floor ratios: the few numbers every scenario reports."""
from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """p50, p99 and max of durations given in seconds, in milliseconds (3 decimals)."""
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 3)

    return {"n": len(seconds), "p50_ms": ms(percentile(seconds, 50)), "p99_ms": ms(percentile(seconds, 99)),
            "max_ms": ms(max(seconds) if seconds else None), "mean_ms": ms(sum(seconds) / len(seconds) if seconds else None)}


def ratio(value: float | None, floor: float | None) -> float | None:
    """How many floors a figure is (value / floor), one decimal; None when either is missing."""
    if value is None or not floor:
        return None
    return round(value / floor, 1)


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx
