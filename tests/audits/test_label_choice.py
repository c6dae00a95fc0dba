"""The label-choice audit on a synthetic Obermeyer-like cohort and against pandas on the same bins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audits.engines.audit import audit_chunks
from audits.engines.label_choice import LabelChoiceStatistics, label_choice_report, label_choice_statistics
from audits.engines.tables import ColumnRoles


def _cohort(n: int = 20_000, seed: int = 4) -> pd.DataFrame:
    """A cost-trained score: at equal score, group B carries 0.5 more chronic conditions than A; C none."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B", "C"], size=n, p=[0.6, 0.25, 0.15])
    need = rng.poisson(2.0, size=n).astype(float)
    # B's cost understates its need: its score is built from less spending for the same illness.
    spending = need - 0.5 * (group == "B") + rng.normal(0, 0.8, size=n)
    score = (1 / (1 + np.exp(-(spending - 2)))).round(3)
    label = (rng.random(n) < score).astype(int)
    return pd.DataFrame({"group": group, "score": score, "label": label, "chronic_conditions": need})


def _report(frame: pd.DataFrame, chunk: int | None = None) -> dict:
    statistics = LabelChoiceStatistics()
    step = chunk or len(frame)
    for start in range(0, len(frame), step):
        statistics = statistics.merge(
            label_choice_statistics(
                frame.iloc[start : start + step],
                score="score",
                alternative_outcome="chronic_conditions",
                protected=["group"],
                score_is_probability=True,
            )
        )
    return label_choice_report(statistics, references={"group": "A"}, alternative_outcome="chronic_conditions")


def test_a_group_sicker_at_equal_score_is_found_and_a_group_that_is_not_passes() -> None:
    gaps = {g["group"]: g for g in _report(_cohort())["gaps"]}
    assert gaps["B"]["status"] == "fail"
    assert gaps["B"]["ci"][0] > 0.2 and 0.3 < gaps["B"]["gap"] < 0.7
    assert gaps["C"]["status"] == "pass"
    assert gaps["C"]["ci"][0] < 0 < gaps["C"]["ci"][1]


def test_bin_means_equal_pandas_on_the_same_score_ranges() -> None:
    frame = _cohort(5000, seed=5)
    report = _report(frame)
    for table in report["groups"]:
        members = frame[frame["group"] == table["group"]]
        for row in table["bins"]:
            if not row["n"]:
                continue
            inside = members[
                (members["score"] >= row["score_low"] - 5e-4) & (members["score"] <= row["score_high"] + 5e-4)
            ]
            assert row["n"] == len(inside)
            assert row["mean"] == pytest.approx(inside["chronic_conditions"].mean(), abs=1e-9)
    population = [sum(r["n"] for r in bins) for bins in zip(*(t["bins"] for t in report["groups"]), strict=True)]
    assert sum(population) == 5000
    assert max(population) < 5000 * 0.13  # deciles, give or take a score cell


def test_chunked_statistics_give_the_same_report() -> None:
    frame = _cohort(6000, seed=6)
    one, chunked = _report(frame), _report(frame, chunk=777)
    for a, b in zip(one["gaps"], chunked["gaps"], strict=True):
        assert a["gap"] == pytest.approx(b["gap"], abs=1e-12)
        assert a["ci"] == pytest.approx(b["ci"], abs=1e-12)


def test_the_audit_raises_a_label_choice_finding() -> None:
    frame = _cohort()
    roles = ColumnRoles.from_dict(
        {
            "label": "label",
            "score": "score",
            "protected": [{"column": "group", "reference": "A"}],
            "alternative_outcome": "chronic_conditions",
        }
    )
    result, _ = audit_chunks([frame], roles=roles)
    findings = [f for f in result["findings"] if f["metric"] == "label_choice_gap"]
    assert [f["group"] for f in findings] == ["B"]
    assert "At equal score, group = B has" in findings[0]["message"]
    assert result["label_choice"]["bins"] == 10
