"""Group fairness of a binary classifier or a thresholded risk score, from mergeable statistics.

Definitions, names and signs follow aif360 (the test suite holds them to it): differences are
group minus reference ("unprivileged minus privileged"), disparate impact is group over
reference, and the reference ("privileged") group is the declared one, else the largest.
Intersections of protected attributes are attributes of their own: `race&sex`, with groups
such as `Black&female`.

Intervals (95%): Wilson for rates; Newcombe's hybrid score interval for differences of rates;
Katz's log interval for disparate impact; MOVER for the average odds difference; DeLong for
AUROC and its differences; Wald for calibration. p-values test "no disparity" (two-proportion
z-test; Wald for AUROC and calibration) and are adjusted across every comparison of the run
(Holm by default, or Benjamini-Hochberg).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from audits.engines.policy import Policy
from audits.engines.scores import Calibration, Discrimination, ScoreStatistics, calibration, discrimination
from audits.engines.scores import difference_with_interval as wald_difference
from audits.engines.stats import (
    Z_95,
    ConfusionCounts,
    benjamini_hochberg_adjust,
    holm_adjust,
    katz_ratio_interval,
    mover_sum_interval,
    newcombe_interval,
    normal_p_value,
    ratio,
    two_proportion_p_value,
    wilson_interval,
)
from audits.engines.tables import binary_values, group_codes

INTERSECTION_SEPARATOR = "&"

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
SCORE_METRICS = ("auroc", "expected_calibration_error", "calibration_in_the_large", "calibration_slope")

# (metric, numerator, denominator) of each rate, as attributes of ConfusionCounts.
RATE_PARTS: dict[str, tuple[str, str]] = {
    "base_rate": ("positives", "n"),
    "selection_rate": ("predicted_positives", "n"),
    "true_positive_rate": ("true_positives", "positives"),
    "false_positive_rate": ("false_positives", "negatives"),
    "false_negative_rate": ("false_negatives", "positives"),
    "positive_predictive_value": ("true_positives", "predicted_positives"),
    "negative_predictive_value": ("true_negatives", "predicted_negatives"),
    "accuracy": ("correct", "n"),
}

# Each difference of rates and the rate it compares.
RATE_DIFFERENCES = {
    "statistical_parity_difference": "selection_rate",
    "equal_opportunity_difference": "true_positive_rate",
    "false_positive_rate_difference": "false_positive_rate",
    "false_negative_rate_difference": "false_negative_rate",
    "positive_predictive_value_difference": "positive_predictive_value",
}
DISPARITY_METRICS = (
    "statistical_parity_difference",
    "disparate_impact",
    "equal_opportunity_difference",
    "average_odds_difference",
    "false_positive_rate_difference",
    "false_negative_rate_difference",
    "positive_predictive_value_difference",
)

METHODS = {
    "rates": "Wilson score interval",
    "rate_differences": "Newcombe hybrid score interval (method 10); pooled two-proportion z-test",
    "disparate_impact": "Katz log interval (0.5 added to each cell when a count is 0); pooled two-proportion z-test",
    "average_odds_difference": "MOVER interval from the Newcombe intervals of its two differences; Wald z-test",
    "auroc": "DeLong variance, Wald interval; AUROC differences by Wald z-test",
    "calibration": "ten equal-width bins (ECE); calibration-in-the-large = mean observed - mean predicted, Wald; "
    "calibration slope by logistic regression on logit(score), Wald",
    "confidence_level": "0.95",
}


@dataclass
class GroupStatistics:
    counts: ConfusionCounts = field(default_factory=ConfusionCounts)
    scores: ScoreStatistics | None = None

    def __add__(self, other: GroupStatistics) -> GroupStatistics:
        if self.scores is None or other.scores is None:
            scores = self.scores if other.scores is None else other.scores
        else:
            scores = self.scores + other.scores
        return GroupStatistics(self.counts + other.counts, scores)


@dataclass
class FairnessStatistics:
    """Per attribute (and intersection) and group: the sufficient statistics of every metric here."""

    groups: dict[str, dict[str, GroupStatistics]] = field(default_factory=dict)

    def merge(self, other: FairnessStatistics) -> FairnessStatistics:
        merged: dict[str, dict[str, GroupStatistics]] = {a: dict(g) for a, g in self.groups.items()}
        for attribute, groups in other.groups.items():
            target = merged.setdefault(attribute, {})
            for group, statistics in groups.items():
                target[group] = target[group] + statistics if group in target else statistics
        return FairnessStatistics(merged)

    @property
    def counts(self) -> dict[str, dict[str, ConfusionCounts]]:
        return {a: {g: s.counts for g, s in groups.items()} for a, groups in self.groups.items()}


def attribute_sets(protected: list[str], intersection_order: int) -> list[tuple[str, ...]]:
    """Each protected attribute alone, then every combination of 2..intersection_order of them."""
    sets: list[tuple[str, ...]] = [(a,) for a in protected]
    for size in range(2, min(intersection_order, len(protected)) + 1):
        sets.extend(itertools.combinations(protected, size))
    return sets


def fairness_statistics(
    frame: pd.DataFrame,
    *,
    label: str,
    prediction: str | None,
    protected: list[str],
    score: str | None = None,
    score_is_probability: bool = True,
    operating_point: float = 0.5,
    intersection_order: int = 1,
) -> FairnessStatistics:
    """Gather the statistics of one chunk of rows.

    1. Labels and predictions as 0/1; without a prediction column, score >= operating point.
    2. For each attribute and intersection, confusion counts per group in one bincount.
    3. With a score, per-group score histograms for AUROC and calibration.
    """
    y_true = binary_values(frame[label], column=label, role="label")
    if prediction is not None:
        y_pred = binary_values(frame[prediction], column=prediction, role="prediction")
    elif score is not None:
        y_pred = (frame[score].to_numpy(dtype=float) >= operating_point).astype(np.int8)
    else:
        raise ValueError("fairness needs a prediction column or a score with an operating point")
    scores = frame[score].to_numpy(dtype=float) if score is not None else None
    outcome = y_true.astype(np.int64) * 2 + y_pred  # 0 = TN, 1 = FP, 2 = FN, 3 = TP
    codes_by_attribute = {a: group_codes(frame[a]) for a in protected}
    result: dict[str, dict[str, GroupStatistics]] = {}
    for attributes in attribute_sets(protected, intersection_order):
        codes, names = codes_by_attribute[attributes[0]]
        for other in attributes[1:]:
            other_codes, other_names = codes_by_attribute[other]
            combined = codes * len(other_names) + other_codes
            codes, present = pd.factorize(combined, sort=False)
            names = [
                f"{names[c // len(other_names)]}{INTERSECTION_SEPARATOR}{other_names[c % len(other_names)]}"
                for c in present
            ]
        table = np.bincount(codes * 4 + outcome, minlength=len(names) * 4).reshape(len(names), 4)
        by_group: dict[str, GroupStatistics] = {}
        for index, (name, row) in enumerate(zip(names, table, strict=True)):
            counts = ConfusionCounts(
                true_positives=int(row[3]),
                false_positives=int(row[1]),
                true_negatives=int(row[0]),
                false_negatives=int(row[2]),
            )
            group_scores = None
            if scores is not None:
                members = codes == index
                group_scores = ScoreStatistics.from_arrays(
                    y_true[members], scores[members], is_probability=score_is_probability
                )
            by_group[str(name)] = GroupStatistics(counts, group_scores)
        result[INTERSECTION_SEPARATOR.join(attributes)] = by_group
    return FairnessStatistics(result)


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
    auroc: float | None = None
    auroc_bin_error_bound: float | None = None
    expected_calibration_error: float | None = None
    calibration_in_the_large: float | None = None
    calibration_slope: float | None = None
    is_reference: bool = False
    ci: dict[str, list[float] | None] = field(default_factory=dict)


@dataclass
class Disparity:
    attribute: str
    group: str
    reference: str
    metric: str
    value: float | None
    ci: list[float] | None = None
    p_value: float | None = None  # adjusted for the run's comparisons
    p_value_unadjusted: float | None = None
    status: str = "pass"
    n: int = 0
    reference_n: int = 0


@dataclass
class FairnessResult:
    groups: list[GroupMetrics]
    disparities: list[Disparity]
    references: dict[str, str]
    min_group_size: int
    correction: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [asdict(g) for g in self.groups],
            "disparities": [asdict(d) for d in self.disparities],
            "references": dict(self.references),
            "min_group_size": self.min_group_size,
            "methods": {**METHODS, "p_value_correction": self.correction},
        }


def _interval(values: tuple[float, float] | None) -> list[float] | None:
    return [float(values[0]), float(values[1])] if values is not None else None


def _rate_parts(counts: ConfusionCounts, rate: str) -> tuple[int, int]:
    numerator, denominator = RATE_PARTS[rate]
    if numerator == "correct":
        return counts.true_positives + counts.true_negatives, counts.n
    return getattr(counts, numerator), getattr(counts, denominator)


def fairness_report(
    statistics: FairnessStatistics, *, references: dict[str, str | None], policy: Policy | None = None
) -> FairnessResult:
    """Per-group metrics with intervals, and every group's disparities against its reference group.

    1. The reference group is the declared one (for an intersection, the combination of the
       declared ones), else the largest group of the attribute.
    2. Every group gets its rates and score metrics with 95% intervals; a rate with an empty
       denominator is None.
    3. Every other group gets the disparity metrics against the reference, with intervals
       and p-values; the p-values are adjusted across all comparisons of the run.
    4. Each disparity gets its status under the policy: insufficient_data when either group
       is smaller than min_group_size or the metric is undefined, else pass or fail.
    """
    policy = policy or Policy()
    groups: list[GroupMetrics] = []
    disparities: list[Disparity] = []
    chosen: dict[str, str] = {}
    for attribute, by_group in statistics.groups.items():
        reference = _reference_group(attribute, by_group, references)
        chosen[attribute] = reference
        privileged = by_group[reference]
        summaries = {name: _summarise(s) for name, s in by_group.items()}
        for name in sorted(by_group, key=lambda g: (g != reference, -by_group[g].counts.n, g)):
            groups.append(_group_metrics(attribute, name, by_group[name], summaries[name], name == reference))
            if name == reference:
                continue
            for disparity in _disparities(by_group[name], privileged, summaries[name], summaries[reference]):
                disparity.attribute, disparity.group, disparity.reference = attribute, name, reference
                disparities.append(disparity)

    adjust = holm_adjust if policy.correction == "holm" else benjamini_hochberg_adjust
    for disparity, adjusted in zip(disparities, adjust([d.p_value_unadjusted for d in disparities]), strict=True):
        disparity.p_value = adjusted
        too_small = min(disparity.n, disparity.reference_n) < policy.min_group_size
        disparity.status = (
            "insufficient_data"
            if too_small or disparity.value is None
            else policy.status(
                disparity.metric, disparity.value, (disparity.ci[0], disparity.ci[1]) if disparity.ci else None
            )
        )
    return FairnessResult(groups, disparities, chosen, policy.min_group_size, policy.correction)


def _reference_group(attribute: str, by_group: dict[str, GroupStatistics], references: dict[str, str | None]) -> str:
    parts = attribute.split(INTERSECTION_SEPARATOR)
    declared = [references.get(p) for p in parts]
    if all(declared):
        candidate = INTERSECTION_SEPARATOR.join(str(d) for d in declared)
        if candidate in by_group:
            return candidate
    return max(by_group, key=lambda g: (by_group[g].counts.n, g))


@dataclass
class _Summary:
    discrimination: Discrimination | None
    calibration: Calibration | None


def _summarise(statistics: GroupStatistics) -> _Summary:
    if statistics.scores is None:
        return _Summary(None, None)
    return _Summary(discrimination(statistics.scores), calibration(statistics.scores))


def _group_metrics(
    attribute: str, name: str, statistics: GroupStatistics, summary: _Summary, is_reference: bool
) -> GroupMetrics:
    counts = statistics.counts
    rates = {rate: ratio(*_rate_parts(counts, rate)) for rate in GROUP_RATES}
    intervals: dict[str, list[float] | None] = {
        rate: _interval(wilson_interval(*_rate_parts(counts, rate))) for rate in GROUP_RATES
    }
    metrics = GroupMetrics(
        attribute=attribute,
        group=name,
        n=counts.n,
        positives=counts.positives,
        predicted_positives=counts.predicted_positives,
        is_reference=is_reference,
        **rates,  # type: ignore[arg-type]
    )
    if summary.discrimination is not None:
        metrics.auroc = summary.discrimination.auroc
        metrics.auroc_bin_error_bound = summary.discrimination.bin_error_bound
        intervals["auroc"] = _interval(summary.discrimination.ci)
    if summary.calibration is not None:
        metrics.expected_calibration_error = summary.calibration.expected_calibration_error
        metrics.calibration_in_the_large = summary.calibration.calibration_in_the_large
        metrics.calibration_slope = summary.calibration.calibration_slope
        intervals["calibration_in_the_large"] = _interval(summary.calibration.calibration_in_the_large_ci)
        intervals["calibration_slope"] = _interval(summary.calibration.calibration_slope_ci)
    metrics.ci = intervals
    return metrics


def _disparities(
    group: GroupStatistics, reference: GroupStatistics, summary: _Summary, reference_summary: _Summary
) -> list[Disparity]:
    unprivileged, privileged = group.counts, reference.counts

    def make(metric: str, value: float | None, ci: Any, p_value: float | None) -> Disparity:
        return Disparity("", "", "", metric, value, _interval(ci), None, p_value, "pass", unprivileged.n, privileged.n)

    def rate_difference(metric: str, rate: str) -> Disparity:
        a, b = _rate_parts(unprivileged, rate), _rate_parts(privileged, rate)
        value = None if a[1] == 0 or b[1] == 0 else a[0] / a[1] - b[0] / b[1]
        return make(metric, value, newcombe_interval(*a, *b), two_proportion_p_value(*a, *b))

    results = {metric: rate_difference(metric, rate) for metric, rate in RATE_DIFFERENCES.items()}
    selection_a, selection_b = _rate_parts(unprivileged, "selection_rate"), _rate_parts(privileged, "selection_rate")
    disparate_impact = (
        None
        if selection_a[1] == 0 or selection_b[1] == 0 or selection_b[0] == 0
        else (selection_a[0] / selection_a[1]) / (selection_b[0] / selection_b[1])
    )
    results["disparate_impact"] = make(
        "disparate_impact",
        disparate_impact,
        katz_ratio_interval(*selection_a, *selection_b),
        two_proportion_p_value(*selection_a, *selection_b),
    )
    results["average_odds_difference"] = _average_odds(
        results["false_positive_rate_difference"],
        results["equal_opportunity_difference"],
        unprivileged,
        privileged,
        make,
    )
    ordered = [results[metric] for metric in DISPARITY_METRICS]
    if summary.discrimination is not None and reference_summary.discrimination is not None:
        value, interval, p = wald_difference(
            summary.discrimination.auroc,
            summary.discrimination.variance,
            reference_summary.discrimination.auroc,
            reference_summary.discrimination.variance,
        )
        ordered.append(make("auroc_difference", value, interval, p))
    if summary.calibration is not None and reference_summary.calibration is not None:
        value, interval, p = wald_difference(
            summary.calibration.calibration_in_the_large,
            summary.calibration.calibration_in_the_large_variance,
            reference_summary.calibration.calibration_in_the_large,
            reference_summary.calibration.calibration_in_the_large_variance,
        )
        ordered.append(make("calibration_in_the_large_difference", value, interval, p))
        if summary.calibration.calibration_slope_ci is not None and reference_summary.calibration.calibration_slope_ci:
            value, interval, p = wald_difference(
                summary.calibration.calibration_slope,  # type: ignore[arg-type]
                _variance_from_interval(summary.calibration.calibration_slope_ci),
                reference_summary.calibration.calibration_slope,  # type: ignore[arg-type]
                _variance_from_interval(reference_summary.calibration.calibration_slope_ci),
            )
            ordered.append(make("calibration_slope_difference", value, interval, p))
        ece_difference = (
            summary.calibration.expected_calibration_error - reference_summary.calibration.expected_calibration_error
        )
        # ECE has no closed-form interval; its difference is reported without one.
        ordered.append(make("expected_calibration_error_difference", ece_difference, None, None))
    return ordered


def _variance_from_interval(interval: tuple[float, float]) -> float:
    """The variance behind a symmetric Wald 95% interval."""
    return ((interval[1] - interval[0]) / (2 * Z_95)) ** 2


def _average_odds(
    fpr_difference: Disparity,
    tpr_difference: Disparity,
    unprivileged: ConfusionCounts,
    privileged: ConfusionCounts,
    make: Callable[..., Disparity],
) -> Disparity:
    if fpr_difference.value is None or tpr_difference.value is None:
        return make("average_odds_difference", None, None, None)
    value = 0.5 * (fpr_difference.value + tpr_difference.value)
    interval = None
    if fpr_difference.ci is not None and tpr_difference.ci is not None:
        low, high = mover_sum_interval(
            [fpr_difference.value, tpr_difference.value],
            [(fpr_difference.ci[0], fpr_difference.ci[1]), (tpr_difference.ci[0], tpr_difference.ci[1])],
        )
        interval = (0.5 * low, 0.5 * high)
    variance = 0.0
    for counts in (unprivileged, privileged):
        for successes, trials in (
            (counts.false_positives, counts.negatives),
            (counts.true_positives, counts.positives),
        ):
            rate = successes / trials
            variance += rate * (1 - rate) / trials
    p_value = normal_p_value(value, 0.0, 0.5 * math.sqrt(variance)) if variance > 0 else None
    return make("average_odds_difference", value, interval, p_value)
