"""The drift engine against the formulas of the tests Evidently picks, computed here with scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from audits.engines.drift import drift_report, split_column_types


def _frames(n_reference: int, n_current: int, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    reference = pd.DataFrame(
        {
            "age": rng.normal(60, 12, n_reference).round(1),
            "creatinine": rng.lognormal(0, 0.3, n_reference).round(3),
            "ward": rng.choice(["icu", "medical", "surgical"], n_reference, p=[0.2, 0.5, 0.3]),
            "insurance": rng.choice(["public", "private", "none"], n_reference, p=[0.5, 0.4, 0.1]),
        }
    )
    current = pd.DataFrame(
        {
            "age": rng.normal(68, 12, n_current).round(1),  # shifted
            "creatinine": rng.lognormal(0, 0.3, n_current).round(3),  # same distribution
            "ward": rng.choice(["icu", "medical", "surgical"], n_current, p=[0.5, 0.3, 0.2]),  # shifted
            "insurance": rng.choice(["public", "private", "none"], n_current, p=[0.5, 0.4, 0.1]),  # same
        }
    )
    return reference, current


def _run(reference: pd.DataFrame, current: pd.DataFrame):
    numerical, categorical = split_column_types(reference, list(reference.columns))
    result, _ = drift_report(reference, current, numerical=numerical, categorical=categorical)
    return {c.column: c for c in result.columns}, result


def test_large_numeric_columns_use_normed_wasserstein_as_scipy_computes_it() -> None:
    reference, current = _frames(5000, 4000)
    columns, _ = _run(reference, current)
    for name, should_drift in (("age", True), ("creatinine", False)):
        column = columns[name]
        expected = stats.wasserstein_distance(reference[name], current[name]) / max(np.std(reference[name]), 0.001)
        assert column.stattest == "Wasserstein distance (normed)"
        assert column.threshold == 0.1
        assert column.score == pytest.approx(expected, rel=1e-9)
        assert column.drifted is should_drift
        assert column.drifted == (expected >= 0.1)


def test_large_categorical_columns_use_jensen_shannon_distance_of_the_frequencies() -> None:
    reference, current = _frames(5000, 4000)
    columns, _ = _run(reference, current)
    for name, should_drift in (("ward", True), ("insurance", False)):
        keys = sorted(set(reference[name]) | set(current[name]))
        ref = reference[name].value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
        cur = current[name].value_counts(normalize=True).reindex(keys, fill_value=0).to_numpy()
        expected = distance.jensenshannon(ref, cur)
        assert columns[name].stattest == "Jensen-Shannon distance"
        assert columns[name].score == pytest.approx(expected, rel=1e-9)
        assert columns[name].drifted is should_drift


def test_small_numeric_columns_use_the_kolmogorov_smirnov_p_value() -> None:
    reference, current = _frames(400, 300, seed=12)
    columns, _ = _run(reference, current)
    for name in ("age", "creatinine"):
        p_value = stats.ks_2samp(reference[name], current[name]).pvalue
        assert columns[name].stattest == "K-S p_value"
        assert columns[name].threshold == 0.05
        assert columns[name].score == pytest.approx(p_value, rel=1e-9)
        assert columns[name].drifted == (p_value < 0.05)
    assert columns["age"].drifted is True


def test_dataset_drift_is_declared_when_half_the_columns_drift() -> None:
    reference, current = _frames(5000, 4000)
    _, result = _run(reference, current)
    assert result.share_drifted == pytest.approx(2 / 4)
    assert result.dataset_drift is True
    _, steady = _run(reference[["creatinine", "insurance", "age"]], current[["creatinine", "insurance", "age"]])
    assert steady.share_drifted == pytest.approx(1 / 3)
    assert steady.dataset_drift is False


def test_identical_data_does_not_drift() -> None:
    reference, _ = _frames(3000, 10)
    _, result = _run(reference, reference.copy())
    assert result.share_drifted == 0.0
    assert all(c.score == pytest.approx(0.0, abs=1e-12) for c in result.columns)


def test_numeric_codes_declared_categorical_get_the_categorical_test() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"admission_type": rng.choice([1, 2, 3, 5, 6, 7, 8], 3000)})
    current = pd.DataFrame({"admission_type": rng.choice([1, 2, 3, 5, 6, 7, 8], 3000)})
    numerical, categorical = split_column_types(reference, ["admission_type"], categorical_columns=["admission_type"])
    assert (numerical, categorical) == ([], ["admission_type"])
    result, _ = drift_report(reference, current, numerical=numerical, categorical=categorical)
    assert result.columns[0].stattest == "Jensen-Shannon distance"
    assert result.columns[0].column_type == "categorical"
    as_numbers, _ = _run(reference, current)
    assert as_numbers["admission_type"].stattest == "Wasserstein distance (normed)"
