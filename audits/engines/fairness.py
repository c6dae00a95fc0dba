"""Group fairness of a binary classifier, from per-group confusion counts.

Definitions, names and signs follow aif360 (the test suite holds them to it):
differences are unprivileged minus privileged, disparate impact is unprivileged
over privileged, and the privileged group is the attribute's reference group.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from audits.engines.stats import ConfusionCounts, ratio
from audits.engines.tables import binary_values, group_labels

GROUP_RATES = (
    "base_rate",
    "selection_rate",
    "true_positive_rate",
    "false_positive_rate",
    "false_negative_rate",
    "positive_predictive_value",
    "negative_predictive_value",
    "accuracy",
)

DISPARITY_METRICS = (
    "statistical_parity_difference",
    "disparate_impact",
    "equal_opportunity_difference",
    "average_odds_difference",
    "false_positive_rate_difference",
)


@dataclass
class FairnessStatistics:
    """Confusion counts per attribute and group: the sufficient statistics of every metric here."""

    counts: dict[str, dict[str, ConfusionCounts]] = field(default_factory=dict)

    def merge(self, other: FairnessStatistics) -> FairnessStatistics:
        merged: dict[str, dict[str, ConfusionCounts]] = {}
        for source in (self.counts, other.counts):
            for attribute, groups in source.items():
                target = merged.setdefault(attribute, {})
                for group, counts in groups.items():
                    target[group] = target.get(group, ConfusionCounts()) + counts
        return FairnessStatistics(merged)


@dataclass
class GroupMetrics:
    attribute: str
    group: str
    n: int
    positives: int
    predicted_positives: int
    base_rate: float | None
    selection_rate: float | None
    true_positive_rate: float | None
    false_positive_rate: float | None
    false_negative_rate: float | None
    positive_predictive_value: float | None
    negative_predictive_value: float | None
    accuracy: float | None
    is_reference: bool = False


@dataclass
class Disparity:
    attribute: str
    group: str
    reference: str
    metric: str
    value: float | None


@dataclass
class FairnessResult:
    groups: list[GroupMetrics]
    disparities: list[Disparity]
    references: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [asdict(g) for g in self.groups],
            "disparities": [asdict(d) for d in self.disparities],
            "references": dict(self.references),
        }


def fairness_statistics(
    frame: pd.DataFrame, *, label: str, prediction: str, protected: list[str]
) -> FairnessStatistics:
    """Count true/false positives/negatives per group of each protected attribute in one chunk."""
    y_true = binary_values(frame[label], column=label, role="label")
    y_pred = binary_values(frame[prediction], column=prediction, role="prediction")
    # One code per row: 0 = TN, 1 = FP, 2 = FN, 3 = TP.
    outcome = y_true.astype(np.int64) * 2 + y_pred
    counts: dict[str, dict[str, ConfusionCounts]] = {}
    for attribute in protected:
        groups = group_labels(frame[attribute]).to_numpy(dtype=object)
        names, inverse = np.unique(groups, return_inverse=True)
        table = np.zeros((len(names), 4), dtype=np.int64)
        np.add.at(table, (inverse, outcome), 1)
        counts[attribute] = {
            str(name): ConfusionCounts(
                true_positives=int(row[3]),
                false_positives=int(row[1]),
                true_negatives=int(row[0]),
                false_negatives=int(row[2]),
            )
            for name, row in zip(names, table, strict=True)
        }
    return FairnessStatistics(counts)


def fairness_report(statistics: FairnessStatistics, *, references: dict[str, str | None]) -> FairnessResult:
    """Per-group rates and each group's disparities against its attribute's reference group.

    1. The reference group is the declared one, else the largest group of the attribute.
    2. Every group gets its rates; a rate with an empty denominator is None.
    3. Every non-reference group gets the disparity metrics against the reference.
    """
    groups: list[GroupMetrics] = []
    disparities: list[Disparity] = []
    chosen: dict[str, str] = {}
    for attribute, by_group in statistics.counts.items():
        reference = references.get(attribute) or max(by_group, key=lambda g: (by_group[g].n, g))
        chosen[attribute] = reference
        privileged = by_group.get(reference, ConfusionCounts())
        for group in sorted(by_group, key=lambda g: (g != reference, -by_group[g].n, g)):
            counts = by_group[group]
            groups.append(_group_metrics(attribute, group, counts, is_reference=group == reference))
            if group == reference:
                continue
            for metric, value in disparity_values(counts, privileged).items():
                disparities.append(Disparity(attribute, group, reference, metric, value))
    return FairnessResult(groups=groups, disparities=disparities, references=chosen)


def disparity_values(unprivileged: ConfusionCounts, privileged: ConfusionCounts) -> dict[str, float | None]:
    """aif360's disparity metrics of one group against the reference group."""

    def difference(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    selection_u, selection_p = unprivileged.selection_rate(), privileged.selection_rate()
    tpr_diff = difference(unprivileged.true_positive_rate(), privileged.true_positive_rate())
    fpr_diff = difference(unprivileged.false_positive_rate(), privileged.false_positive_rate())
    return {
        "statistical_parity_difference": difference(selection_u, selection_p),
        "disparate_impact": None if selection_u is None or selection_p is None else ratio(selection_u, selection_p),
        "equal_opportunity_difference": tpr_diff,
        "average_odds_difference": None if tpr_diff is None or fpr_diff is None else 0.5 * (fpr_diff + tpr_diff),
        "false_positive_rate_difference": fpr_diff,
    }


def _group_metrics(attribute: str, group: str, counts: ConfusionCounts, *, is_reference: bool) -> GroupMetrics:
    return GroupMetrics(
        attribute=attribute,
        group=group,
        n=counts.n,
        positives=counts.positives,
        predicted_positives=counts.predicted_positives,
        base_rate=counts.base_rate(),
        selection_rate=counts.selection_rate(),
        true_positive_rate=counts.true_positive_rate(),
        false_positive_rate=counts.false_positive_rate(),
        false_negative_rate=counts.false_negative_rate(),
        positive_predictive_value=counts.positive_predictive_value(),
        negative_predictive_value=counts.negative_predictive_value(),
        accuracy=counts.accuracy(),
        is_reference=is_reference,
    )
