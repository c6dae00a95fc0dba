"""The fairness engine against aif360 (to 1e-9), against hand computation, and chunked against one pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audits.engines.fairness import DISPARITY_METRICS, FairnessStatistics, fairness_report, fairness_statistics
from audits.engines.stats import ConfusionCounts
from tests.aif360_reference import AIF360_RATES, aif360_metric, aif360_value
from tests.conftest import clinical_frame


def _report(frame: pd.DataFrame, protected: list[str], references: dict[str, str | None], *, order: int = 1):
    statistics = fairness_statistics(frame, label="y", prediction="p", protected=protected, intersection_order=order)
    return fairness_report(statistics, references=references)


def _random_frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c", "d"], size=n, p=[0.5, 0.3, 0.15, 0.05])
    bias = pd.Series(group).map({"a": 0.0, "b": 0.15, "c": -0.1, "d": 0.3}).to_numpy()
    y = (rng.random(n) < 0.3 + bias / 2).astype(int)
    p = (rng.random(n) < 0.25 + bias + 0.3 * y).astype(int)
    sex = rng.choice(["f", "m"], size=n)
    return pd.DataFrame({"y": y, "p": p, "group": group, "sex": sex})


DATASETS = {
    "random-small": lambda: _random_frame(1, 300),
    "random-large": lambda: _random_frame(2, 50_000),
    "clinical": lambda: clinical_frame(6000, seed=3).rename(columns={"sepsis": "y", "alert": "p", "race": "group"}),
}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_disparity_and_rate_equals_aif360(dataset: str) -> None:
    frame = DATASETS[dataset]()
    references = {"group": "a" if dataset != "clinical" else "White", "sex": None}
    result = _report(frame, ["group", "sex"], references, order=2)
    assert "group&sex" in result.references
    compared = 0
    for disparity in result.disparities:
        metric = aif360_metric(
            frame,
            label="y",
            prediction="p",
            attribute=disparity.attribute,
            group=disparity.group,
            reference=disparity.reference,
        )
        expected = aif360_value(metric, disparity.metric)
        if expected is None:
            assert disparity.value is None
        else:
            assert disparity.value == pytest.approx(expected, abs=1e-9), (disparity, expected)
        compared += 1
    for group in result.groups:
        reference = result.references[group.attribute]
        other = (
            group.group
            if group.group != reference
            else next(g.group for g in result.groups if g.attribute == group.attribute and g.group != reference)
        )
        metric = aif360_metric(
            frame, label="y", prediction="p", attribute=group.attribute, group=other, reference=reference
        )
        for ours, theirs in AIF360_RATES.items():
            # aif360 gives a group's rate with privileged=True/False.
            expected = aif360_value(metric, theirs, privileged=group.group == reference)
            assert getattr(group, ours) == pytest.approx(expected, abs=1e-9), (group.group, ours)
            compared += 1
    assert compared > 20
    assert {d.metric for d in result.disparities} == set(DISPARITY_METRICS)


def test_rates_match_a_hand_computed_confusion_table() -> None:
    # Group b: 2 TP, 1 FN, 1 FP, 2 TN. Group a (reference): 1 TP, 1 FN, 0 FP, 2 TN.
    frame = pd.DataFrame(
        {
            "y": [1, 1, 1, 0, 0, 0, 1, 1, 0, 0],
            "p": [1, 1, 0, 1, 0, 0, 1, 0, 0, 0],
            "g": ["b"] * 6 + ["a"] * 4,
        }
    )
    result = _report(frame, ["g"], {"g": "a"})
    b = next(x for x in result.groups if x.group == "b")
    assert (b.n, b.true_positive_rate, b.false_positive_rate, b.selection_rate) == (6, 2 / 3, 1 / 3, 0.5)
    values = {d.metric: d.value for d in result.disparities}
    assert values["statistical_parity_difference"] == pytest.approx(0.5 - 0.25)
    assert values["disparate_impact"] == pytest.approx(0.5 / 0.25)
    assert values["equal_opportunity_difference"] == pytest.approx(2 / 3 - 1 / 2)
    assert values["average_odds_difference"] == pytest.approx(0.5 * ((1 / 3 - 0) + (2 / 3 - 1 / 2)))


def test_the_largest_group_is_the_reference_when_none_is_declared() -> None:
    frame = _random_frame(4, 2000)
    result = _report(frame, ["group"], {"group": None})
    assert result.references == {"group": "a"}
    assert all(d.reference == "a" for d in result.disparities)


def test_a_missing_protected_value_is_its_own_group_not_dropped() -> None:
    frame = pd.DataFrame({"y": [1, 0, 1, 0], "p": [1, 0, 0, 0], "g": ["a", None, "a", np.nan]})
    result = _report(frame, ["g"], {"g": "a"})
    assert {(g.group, g.n) for g in result.groups} == {("a", 2), ("(missing)", 2)}


def test_an_undefined_rate_is_none_and_so_are_disparities_built_on_it() -> None:
    # Group b has no positives: its TPR is undefined.
    frame = pd.DataFrame({"y": [1, 0, 0, 0], "p": [1, 0, 1, 0], "g": ["a", "a", "b", "b"]})
    result = _report(frame, ["g"], {"g": "a"})
    b = next(x for x in result.groups if x.group == "b")
    assert b.true_positive_rate is None
    values = {d.metric: d.value for d in result.disparities}
    assert values["equal_opportunity_difference"] is None
    assert values["average_odds_difference"] is None
    assert values["false_positive_rate_difference"] == pytest.approx(0.5)


def test_chunked_statistics_merge_to_exactly_the_one_pass_statistics() -> None:
    frame = _random_frame(5, 10_001)
    one_pass = fairness_statistics(frame, label="y", prediction="p", protected=["group", "sex"])
    merged = FairnessStatistics()
    for start in range(0, len(frame), 997):
        chunk = frame.iloc[start : start + 997]
        merged = merged.merge(fairness_statistics(chunk, label="y", prediction="p", protected=["group", "sex"]))
    assert merged.counts == one_pass.counts
    assert sum(c.n for c in merged.counts["group"].values()) == 10_001


def test_confusion_counts_add_componentwise() -> None:
    assert ConfusionCounts(1, 2, 3, 4) + ConfusionCounts(10, 20, 30, 40) == ConfusionCounts(11, 22, 33, 44)
