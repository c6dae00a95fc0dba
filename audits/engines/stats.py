"""Mergeable sufficient statistics: what one chunk of rows contributes to an audit.

Merging the statistics of chunks, in any order, gives the statistics of the whole,
so one pass over Parquet row groups and a Celery chord over partitions agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None where the rate is undefined (empty denominator)."""
    if denominator == 0:
        return None
    return numerator / denominator


@dataclass
class ConfusionCounts:
    """Counts of one group's labels against its predictions (1 is the favourable outcome)."""

    true_positives: int = 0
    false_positives: int = 0
    true_negatives: int = 0
    false_negatives: int = 0

    def __add__(self, other: ConfusionCounts) -> ConfusionCounts:
        return ConfusionCounts(
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.true_negatives + other.true_negatives,
            self.false_negatives + other.false_negatives,
        )

    @property
    def n(self) -> int:
        return self.true_positives + self.false_positives + self.true_negatives + self.false_negatives

    @property
    def positives(self) -> int:
        return self.true_positives + self.false_negatives

    @property
    def negatives(self) -> int:
        return self.true_negatives + self.false_positives

    @property
    def predicted_positives(self) -> int:
        return self.true_positives + self.false_positives

    @property
    def predicted_negatives(self) -> int:
        return self.true_negatives + self.false_negatives


# --- Confidence intervals and tests -------------------------------------------------------------
#
# Rates get Wilson score intervals; differences of two independent rates get Newcombe's hybrid
# score interval (Newcombe 1998, method 10); a ratio of rates gets the Katz log interval; a sum
# or mean of independent estimates gets the MOVER interval (Zou & Donner 2008) built from the
# intervals of its parts. Differences are tested with the two-proportion z-test.

Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion; None when there are no trials."""
    if trials == 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, z: float = Z_95
) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval of p_a - p_b."""
    interval_a = wilson_interval(successes_a, trials_a, z)
    interval_b = wilson_interval(successes_b, trials_b, z)
    if interval_a is None or interval_b is None:
        return None
    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    (l_a, u_a), (l_b, u_b) = interval_a, interval_b
    difference = p_a - p_b
    lower = difference - math.sqrt((p_a - l_a) ** 2 + (u_b - p_b) ** 2)
    upper = difference + math.sqrt((u_a - p_a) ** 2 + (p_b - l_b) ** 2)
    return lower, upper


def katz_ratio_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, z: float = Z_95
) -> tuple[float, float] | None:
    """Katz log interval of (s_a/n_a) / (s_b/n_b); 0.5 is added to every cell when a count is zero."""
    if trials_a == 0 or trials_b == 0:
        return None
    if successes_a == 0 or successes_b == 0:
        successes_a, successes_b = successes_a + 0.5, successes_b + 0.5  # type: ignore[assignment]
        trials_a, trials_b = trials_a + 1, trials_b + 1  # type: ignore[assignment]
    log_ratio = math.log((successes_a / trials_a) / (successes_b / trials_b))
    standard_error = math.sqrt(1 / successes_a - 1 / trials_a + 1 / successes_b - 1 / trials_b)
    return math.exp(log_ratio - z * standard_error), math.exp(log_ratio + z * standard_error)


def mover_sum_interval(estimates: list[float], intervals: list[tuple[float, float]]) -> tuple[float, float]:
    """MOVER interval of a sum of independent estimates, from each estimate's own interval."""
    total = sum(estimates)
    lower = total - math.sqrt(sum((e - low) ** 2 for e, (low, _) in zip(estimates, intervals, strict=True)))
    upper = total + math.sqrt(sum((high - e) ** 2 for e, (_, high) in zip(estimates, intervals, strict=True)))
    return lower, upper


def two_proportion_p_value(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test of p_a = p_b."""
    if trials_a == 0 or trials_b == 0:
        return None
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance == 0:
        return 1.0
    statistic = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return math.erfc(abs(statistic) / math.sqrt(2))


def normal_p_value(estimate: float, null: float, standard_error: float) -> float | None:
    """Two-sided p-value of a Wald z-test."""
    if standard_error <= 0 or math.isnan(standard_error):
        return None
    return math.erfc(abs(estimate - null) / standard_error / math.sqrt(2))


def holm_adjust(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (family-wise error); None entries are left out of the family."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(indexed)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg_adjust(p_values: list[float | None]) -> list[float | None]:
    """Benjamini-Hochberg step-up adjustment (false discovery rate); None entries are left out."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    m = len(indexed)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 1.0
    for rank in range(m - 1, -1, -1):
        p, i = indexed[rank]
        running = min(running, p * m / (rank + 1))
        adjusted[i] = min(1.0, running)
    return adjusted
