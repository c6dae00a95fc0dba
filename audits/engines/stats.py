"""Mergeable sufficient statistics: what one chunk of rows contributes to an audit.

Merging the statistics of chunks, in any order, gives the statistics of the whole,
so one pass over Parquet row groups and a Celery chord over partitions agree.
"""

from __future__ import annotations

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

    def base_rate(self) -> float | None:
        return ratio(self.positives, self.n)

    def selection_rate(self) -> float | None:
        return ratio(self.predicted_positives, self.n)

    def true_positive_rate(self) -> float | None:
        return ratio(self.true_positives, self.positives)

    def false_positive_rate(self) -> float | None:
        return ratio(self.false_positives, self.negatives)

    def false_negative_rate(self) -> float | None:
        return ratio(self.false_negatives, self.positives)

    def positive_predictive_value(self) -> float | None:
        return ratio(self.true_positives, self.predicted_positives)

    def negative_predictive_value(self) -> float | None:
        return ratio(self.true_negatives, self.predicted_negatives)

    def accuracy(self) -> float | None:
        return ratio(self.true_positives + self.true_negatives, self.n)
