"""Properties of the engines over generated data (hypothesis): statistics merged from chunks cut anywhere give
the one-pass answer; whatever the groups, labels and scores (one group, one class, empty groups, ties), the
report is built without error and every rate lies in [0, 1] with its interval around it; the counts agree
with a direct pandas count."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audits.engines.fairness import GROUP_RATES, fairness_report, fairness_statistics
from audits.engines.policy import Policy


@st.composite
def cohorts(draw: Any) -> pd.DataFrame:
    n = draw(st.integers(min_value=1, max_value=300))
    seed = draw(st.integers(min_value=0, max_value=2**32 - 1))
    rng = np.random.default_rng(seed)
    groups = draw(st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=4, unique=True))
    positive = draw(st.floats(min_value=0.0, max_value=1.0))
    frame = pd.DataFrame(
        {
            "g": rng.choice(groups, n),
            "h": rng.choice(["x", "y"], n),
            "label": (rng.random(n) < positive).astype(int),
            "score": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], n) if draw(st.booleans()) else rng.random(n).round(3),
        }
    )
    frame["pred"] = (frame["score"] >= 0.5).astype(int)
    return frame


def _statistics(frame: pd.DataFrame) -> Any:
    return fairness_statistics(
        frame, label="label", prediction="pred", protected=["g", "h"], score="score", intersection_order=2
    )


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


@settings(max_examples=80, deadline=None)
@given(frame=cohorts(), cuts=st.lists(st.floats(min_value=0, max_value=1), max_size=3))
def test_chunks_cut_anywhere_give_the_one_pass_answer(frame: pd.DataFrame, cuts: list[float]) -> None:
    points = sorted({int(c * len(frame)) for c in cuts} | {0, len(frame)})
    chunks = [frame.iloc[a:b] for a, b in itertools.pairwise(points) if b > a]
    merged = _statistics(chunks[0])
    for chunk in chunks[1:]:
        merged = merged.merge(_statistics(chunk))
    one_pass = _statistics(frame)
    assert merged.counts == one_pass.counts
    references = {"g": None, "h": None}
    assert _close(
        fairness_report(merged, references=references).to_dict(),
        fairness_report(one_pass, references=references).to_dict(),
    )


@settings(max_examples=80, deadline=None)
@given(frame=cohorts(), min_group_size=st.integers(min_value=1, max_value=50))
def test_any_cohort_gets_a_report_with_rates_in_range_and_counts_that_add_up(
    frame: pd.DataFrame, min_group_size: int
) -> None:
    report = fairness_report(
        _statistics(frame), references={"g": None, "h": None}, policy=Policy(min_group_size=min_group_size)
    ).to_dict()
    rates = (*GROUP_RATES, "auroc")
    for group in report["groups"]:
        if group["attribute"] == "g":
            rows = frame[frame["g"] == group["group"]]
            assert group["n"] == len(rows)
            assert group["positives"] == int(rows["label"].sum())
            assert group["predicted_positives"] == int(rows["pred"].sum())
        for name in rates:
            value = group[name]
            if value is None:
                continue
            assert 0.0 <= value <= 1.0, (name, value)
            interval = group["ci"].get(name)
            if interval:
                assert interval[0] - 1e-9 <= value <= interval[1] + 1e-9, (name, value, interval)
    for disparity in report["disparities"]:
        assert disparity["status"] in ("pass", "fail", "insufficient_data")


def test_a_calibration_fit_at_the_edge_of_separation_has_no_slope_rather_than_an_error() -> None:
    # Found by exploring (it raised "math domain error"): in a small intersection the IRLS fit of the
    # calibration slope runs to separation, and its covariance has no usable variance.
    frame = pd.DataFrame(
        {
            "g": list("BABABAABBBBAABBBBABAAAAABBBBBBABBBAAABBB"),
            "h": list("yyxxyyxxyxyyxxxyyyxyyyyyxxyxxyyyyxxyxyxx"),
            "label": [int(c) for c in "1010101101110111100101111010111111111101"],
            "score": [float(c) / 4 for c in "4432003040312231034123132112143321434334"],
        }
    )
    frame["pred"] = (frame["score"] >= 0.5).astype(int)
    report = fairness_report(_statistics(frame), references={"g": None, "h": None}).to_dict()
    for group in report["groups"]:
        slope = group["calibration_slope"]
        if slope is not None:
            assert math.isfinite(slope) and all(math.isfinite(v) for v in group["ci"]["calibration_slope"])


@pytest.mark.django_db
def test_a_policy_number_too_large_to_store_is_refused(team, model_version) -> None:
    from tests.conftest import client_for

    client = client_for(team.owner, team.organization)
    url = f"/api/v1/models/{model_version.ai_model_id}/policy/"
    response = client.patch(url, {"min_group_size": 2**40}, format="json")
    assert response.status_code == 400 and "min_group_size" in response.json()
