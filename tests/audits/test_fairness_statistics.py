"""Intervals, p-values, policy statuses and score metrics of the fairness engine, against independent
references: statsmodels, scikit-learn, and hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from audits.engines.fairness import FairnessStatistics, fairness_report, fairness_statistics
from audits.engines.policy import Policy
from audits.engines.scores import ScoreStatistics, calibration, discrimination
from tests.data import clinical_frame


def _clinical(n: int = 6000, seed: int = 3) -> pd.DataFrame:
    return clinical_frame(n, seed=seed).rename(columns={"sepsis": "y", "alert": "p", "race": "group"})


def _result(frame: pd.DataFrame, *, policy: Policy | None = None, score: str | None = "score", prediction="p"):
    statistics = fairness_statistics(
        frame,
        label="y",
        prediction=prediction,
        protected=["group", "sex"],
        score=score,
        operating_point=(policy or Policy()).operating_point,
        intersection_order=2,
    )
    return fairness_report(statistics, references={"group": "White", "sex": None}, policy=policy)


def _counts(frame: pd.DataFrame, group: str) -> tuple[int, int]:
    members = frame[frame["group"] == group]
    return int(members["p"].sum()), len(members)


def test_rate_intervals_are_wilson_intervals() -> None:
    frame = _clinical()
    result = _result(frame)
    black = next(g for g in result.groups if g.attribute == "group" and g.group == "Black")
    flagged, n = _counts(frame, "Black")
    assert black.ci["selection_rate"] == pytest.approx(proportion_confint(flagged, n, method="wilson"), abs=1e-12)


def test_difference_and_ratio_intervals_equal_statsmodels_newcombe_and_katz() -> None:
    frame = _clinical()
    result = _result(frame)
    by_metric = {d.metric: d for d in result.disparities if d.attribute == "group" and d.group == "Black"}
    a, b = _counts(frame, "Black"), _counts(frame, "White")
    newcombe = confint_proportions_2indep(a[0], a[1], b[0], b[1], method="newcomb", compare="diff")
    katz = confint_proportions_2indep(a[0], a[1], b[0], b[1], method="log", compare="ratio")
    assert by_metric["statistical_parity_difference"].ci == pytest.approx(newcombe, abs=1e-12)
    assert by_metric["disparate_impact"].ci == pytest.approx(katz, rel=1e-10)
    for disparity in by_metric.values():
        if disparity.ci is not None:
            assert disparity.ci[0] <= disparity.value <= disparity.ci[1], disparity.metric


def test_p_values_are_holm_adjusted_across_every_comparison_of_the_run() -> None:
    result = _result(_clinical())
    raw = [d.p_value_unadjusted for d in result.disparities if d.p_value_unadjusted is not None]
    expected = multipletests(raw, method="holm")[1]
    adjusted = [d.p_value for d in result.disparities if d.p_value_unadjusted is not None]
    assert adjusted == pytest.approx(list(expected), abs=1e-12)
    assert len(raw) > 50  # group, sex and group&sex comparisons, each with several metrics
    bh = _result(_clinical(), policy=Policy(correction="benjamini-hochberg"))
    expected_bh = multipletests(raw, method="fdr_bh")[1]
    assert [d.p_value for d in bh.disparities if d.p_value_unadjusted is not None] == pytest.approx(
        list(expected_bh), abs=1e-12
    )


def test_a_group_below_the_minimum_size_is_insufficient_data_not_pass_or_fail() -> None:
    frame = _clinical(3000)
    frame.loc[frame.index[:12], "group"] = "Pacific Islander"
    result = _result(frame, policy=Policy(min_group_size=30))
    small = [d for d in result.disparities if d.attribute == "group" and d.group == "Pacific Islander"]
    assert small and {d.status for d in small} == {"insufficient_data"}
    judged = {d.status for d in result.disparities if d.attribute == "group" and d.group == "Black"}
    assert judged <= {"pass", "fail"}


def test_the_interval_rule_fails_only_when_the_whole_interval_is_past_the_threshold() -> None:
    interval, point = Policy(ci_rule="interval"), Policy(ci_rule="point")
    # Disparate impact 0.75: below 0.8, but the interval reaches above it.
    assert point.status("disparate_impact", 0.75, (0.6, 0.9)) == "fail"
    assert interval.status("disparate_impact", 0.75, (0.6, 0.9)) == "pass"
    assert interval.status("disparate_impact", 0.65, (0.55, 0.79)) == "fail"
    assert interval.status("statistical_parity_difference", -0.2, (-0.3, -0.11)) == "fail"
    assert interval.status("statistical_parity_difference", None, None) == "insufficient_data"


def test_the_built_in_disparity_of_the_synthetic_model_fails_and_a_fair_group_passes() -> None:
    result = _result(_clinical(20_000, seed=5))
    status = {(d.group, d.metric): d.status for d in result.disparities if d.attribute == "group"}
    # The synthetic model lowers the score of one group by 0.12 (see tests/data.py).
    assert status[("Black", "disparate_impact")] == "fail"
    assert status[("Hispanic", "disparate_impact")] == "pass"


def test_auroc_and_its_delong_variance_equal_direct_computations() -> None:
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 2, 3000)
    scores = np.clip(0.3 * labels + rng.normal(0.35, 0.2, 3000), 0, 1).round(4)
    result = discrimination(ScoreStatistics.from_arrays(labels, scores, is_probability=True))
    assert result.auroc == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    v10 = np.array([np.mean((negatives < s) + 0.5 * (negatives == s)) for s in positives])
    v01 = np.array([np.mean((positives > s) + 0.5 * (positives == s)) for s in negatives])
    variance = v10.var(ddof=1) / len(positives) + v01.var(ddof=1) / len(negatives)
    assert result.variance == pytest.approx(variance, rel=1e-9)
    assert result.bin_error_bound == pytest.approx(
        0.5
        * sum(np.sum(positives == s) * np.sum(negatives == s) for s in np.unique(scores))
        / (len(positives) * len(negatives)),
        rel=1e-9,
    )


def test_auroc_of_a_score_outside_zero_one_keeps_its_order() -> None:
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 2, 2000)
    points = (labels * 3 + rng.integers(0, 15, 2000)).astype(float)  # integer risk points 0..17
    statistics = ScoreStatistics.from_arrays(labels, points, is_probability=False)
    assert discrimination(statistics).auroc == pytest.approx(roc_auc_score(labels, points), abs=1e-12)
    assert calibration(statistics) is None


def test_calibration_metrics_equal_hand_and_statsmodels_computations() -> None:
    rng = np.random.default_rng(10)
    scores = rng.uniform(0.02, 0.98, 5000).round(4)
    labels = (rng.random(5000) < np.clip(scores * 0.8 + 0.05, 0, 1)).astype(int)
    result = calibration(ScoreStatistics.from_arrays(labels, scores, is_probability=True))
    bins = np.minimum((scores * 10).astype(int), 9)
    ece = sum(np.sum(bins == b) / 5000 * abs(labels[bins == b].mean() - scores[bins == b].mean()) for b in range(10))
    assert result.expected_calibration_error == pytest.approx(ece, abs=1e-12)
    assert result.calibration_in_the_large == pytest.approx(labels.mean() - scores.mean(), abs=1e-12)
    logit = np.log(scores / (1 - scores))
    fit = sm.Logit(labels, sm.add_constant(logit)).fit(disp=0)
    assert result.calibration_slope == pytest.approx(fit.params[1], rel=1e-6)
    assert result.calibration_slope_ci == pytest.approx(tuple(fit.conf_int()[1]), rel=1e-5)
    assert result.calibration_slope < 1  # the outcome is flatter than the score claims


def test_calibration_slope_difference_is_the_difference_of_the_groups_slopes() -> None:
    result = _result(_clinical(20_000, seed=7))
    groups = {g.group: g for g in result.groups if g.attribute == "group"}
    slope = next(
        d
        for d in result.disparities
        if d.attribute == "group" and d.group == "Black" and d.metric == "calibration_slope_difference"
    )
    assert slope.value == pytest.approx(groups["Black"].calibration_slope - groups["White"].calibration_slope)
    assert slope.ci[0] < slope.value < slope.ci[1]


def test_a_risk_score_alone_is_thresholded_at_the_policy_operating_point() -> None:

    frame = _clinical(3000)
    result = _result(frame, policy=Policy(operating_point=0.35), prediction=None)
    white = next(g for g in result.groups if g.attribute == "group" and g.group == "White")
    members = frame[frame["group"] == "White"]
    assert white.selection_rate == pytest.approx((members["score"] >= 0.35).mean(), abs=1e-12)


def test_score_statistics_merge_over_chunks_to_the_one_pass_statistics() -> None:
    frame = _clinical(7001)
    kwargs = {"label": "y", "prediction": "p", "protected": ["group", "sex"], "score": "score", "intersection_order": 2}
    one_pass = fairness_statistics(frame, **kwargs)
    merged = FairnessStatistics()
    for start in range(0, len(frame), 1000):
        merged = merged.merge(fairness_statistics(frame.iloc[start : start + 1000], **kwargs))
    assert merged.groups.keys() == one_pass.groups.keys()
    for attribute, groups in one_pass.groups.items():
        for name, statistics in groups.items():
            assert merged.groups[attribute][name] == statistics, (attribute, name)
    one, chunked = fairness_report(one_pass, references={}), fairness_report(merged, references={})
    for a, b in zip(one.disparities, chunked.disparities, strict=True):
        assert (a.attribute, a.group, a.metric, a.status) == (b.attribute, b.group, b.metric, b.status)
        # Counts merge exactly; float sums of scores may differ in the last bits with the order of addition.
        assert a.value == pytest.approx(b.value, abs=1e-12, nan_ok=True)


def test_intersections_use_the_combination_of_declared_references() -> None:
    result = _result(_clinical())
    assert result.references["group&sex"] == "White&" + result.references["sex"]
    intersection = [g for g in result.groups if g.attribute == "group&sex"]
    assert len(intersection) == 8
    assert sum(g.n for g in intersection) == 6000
