"""Metric time series and the change of a metric between two audit windows, with its 95% interval.

The change is computed from the two windows' stored estimates and intervals by MOVER (Zou & Donner
2008): for independent estimates a (interval la..ua) and b (lb..ub), the difference b - a has

    low  = (b - a) - sqrt((b - lb)^2 + (ua - a)^2)
    high = (b - a) + sqrt((ub - b)^2 + (a - la)^2)

With Wilson intervals for two rates this is exactly Newcombe's hybrid score interval (method 10), so a
rate's change between windows gets the same interval a difference between groups gets. Ratios
(disparate impact) are compared on the log scale and reported as the ratio of the two windows.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

# Metrics that are ratios: their change between windows is a ratio, judged against 1.
RATIO_METRICS = frozenset({"disparate_impact"})


@dataclass(frozen=True)
class Change:
    """The change of one metric of one group from one window to the next."""

    from_run: int
    to_run: int
    scale: str  # "difference" (b - a, judged against 0) or "ratio" (b / a, judged against 1)
    change: float
    ci_low: float | None
    ci_high: float | None
    # True when the interval excludes no change: the metric moved beyond chance between the windows.
    significant: bool | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mover_difference(
    a: float, a_interval: tuple[float, float], b: float, b_interval: tuple[float, float]
) -> tuple[float, float]:
    """MOVER interval of b - a from the intervals of two independent estimates."""
    (a_low, a_high), (b_low, b_high) = a_interval, b_interval
    difference = b - a
    return (
        difference - math.sqrt((b - b_low) ** 2 + (a_high - a) ** 2),
        difference + math.sqrt((b_high - b) ** 2 + (a - a_low) ** 2),
    )


def window_change(metric: str, earlier: dict[str, Any], later: dict[str, Any]) -> Change | None:
    """The change between two points of a series ({run, value, ci_low, ci_high}); None without both values."""
    a, b = earlier.get("value"), later.get("value")
    if a is None or b is None:
        return None
    limits = [earlier.get("ci_low"), earlier.get("ci_high"), later.get("ci_low"), later.get("ci_high")]
    has_intervals = all(x is not None for x in limits)
    a_interval = (earlier.get("ci_low"), earlier.get("ci_high"))
    b_interval = (later.get("ci_low"), later.get("ci_high"))
    if metric in RATIO_METRICS:
        if a <= 0 or b <= 0 or (has_intervals and min(x for x in limits if x is not None) <= 0):
            return Change(earlier["run"], later["run"], "ratio", math.nan if a <= 0 else b / a, None, None, None)
        if not has_intervals:
            return Change(earlier["run"], later["run"], "ratio", b / a, None, None, None)
        low, high = mover_difference(
            math.log(a),
            (math.log(a_interval[0]), math.log(a_interval[1])),  # type: ignore[arg-type]
            math.log(b),
            (math.log(b_interval[0]), math.log(b_interval[1])),  # type: ignore[arg-type]
        )
        low, high = math.exp(low), math.exp(high)
        return Change(earlier["run"], later["run"], "ratio", b / a, low, high, not low <= 1.0 <= high)
    if not has_intervals:
        return Change(earlier["run"], later["run"], "difference", b - a, None, None, None)
    low, high = mover_difference(a, a_interval, b, b_interval)  # type: ignore[arg-type]
    return Change(earlier["run"], later["run"], "difference", b - a, low, high, not low <= 0.0 <= high)


def series_changes(metric: str, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The change between each pair of consecutive points of a series (points in time order)."""
    changes = []
    for earlier, later in itertools.pairwise(points):
        change = window_change(metric, earlier, later)
        if change is not None:
            changes.append(change.to_dict())
    return changes
