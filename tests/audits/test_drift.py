"""The drift engine against Evidently's DataDriftPreset run on the same data: the same test, score and
verdict for every column, numerical and categorical, small and large; chunked equal to one pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from audits.engines.drift import DriftStatistics, drift_report, drift_statistics, split_column_types
from audits.engines.evidently_report import drift_snapshot, evidently_verdicts
from audits.engines.tables import numeric_ranges


def _frames(n_reference: int, n_current: int, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def make(n: int, shifted: bool) -> pd.DataFrame:
        frame = pd.DataFrame(
            {
                "age": rng.normal(68 if shifted else 60, 12, n).round(1),
                "creatinine": rng.lognormal(0, 0.3, n).round(3),
                "heart_rate": rng.normal(80, 15, n),  # continuous: more distinct values than the exact limit at 1M
                "sofa": rng.integers(0, 4 if shifted else 5, n),  # numerical, at most five values
                "ward": rng.choice(
                    ["icu", "medical", "surgical"], n, p=[0.5, 0.3, 0.2] if shifted else [0.2, 0.5, 0.3]
                ),
                "insurance": rng.choice(["public", "private", "none"], n, p=[0.5, 0.4, 0.1]),
                "flagged": rng.choice([0, 1], n, p=[0.7, 0.3] if shifted else [0.8, 0.2]),
                "sex": rng.choice(["female", "male"], n),
            }
        )
        frame.loc[frame.sample(frac=0.03, random_state=seed).index, "creatinine"] = np.nan
        return frame

    return make(n_reference, False), make(n_current, True)


CATEGORICAL = ["ward", "insurance", "flagged", "sex"]


def _ours(reference: pd.DataFrame, current: pd.DataFrame, *, chunk: int | None = None):
    numerical, categorical = split_column_types(reference, list(reference.columns), categorical_columns=CATEGORICAL)
    ranges = numeric_ranges(
        [pa.Table.from_pandas(reference, preserve_index=False), pa.Table.from_pandas(current, preserve_index=False)],
        numerical,
    )

    def gather(frame: pd.DataFrame) -> DriftStatistics:
        statistics = DriftStatistics()
        step = chunk or len(frame)
        for start in range(0, len(frame), step):
            statistics = statistics.merge(
                drift_statistics(
                    frame.iloc[start : start + step],
                    numerical=numerical,
                    categorical=categorical,
                    ranges=ranges,
                )
            )
        return statistics

    result = drift_report(gather(reference), gather(current), columns=numerical + categorical)
    return {c.column: c for c in result.columns}, result, numerical, categorical


def _evidently(reference: pd.DataFrame, current: pd.DataFrame, numerical: list[str], categorical: list[str]):
    return evidently_verdicts(drift_snapshot(reference, current, numerical=numerical, categorical=categorical))


@pytest.mark.parametrize(("n_reference", "n_current"), [(600, 400), (1000, 3000), (5000, 4000), (40_000, 30_000)])
def test_every_column_gets_evidentlys_test_score_and_verdict(n_reference: int, n_current: int) -> None:
    reference, current = _frames(n_reference, n_current)
    ours, result, numerical, categorical = _ours(reference, current)
    theirs = _evidently(reference, current, numerical, categorical)
    for column, expected in theirs["columns"].items():
        mine = ours[column]
        assert (mine.stattest, mine.threshold) == (expected["stattest"], expected["threshold"]), column
        assert mine.score == pytest.approx(expected["score"], rel=1e-9, abs=1e-12), column
        assert mine.drifted is expected["drifted"], column
        assert not mine.approximate
    assert result.share_drifted == pytest.approx(theirs["share_drifted"])
    assert {c.stattest for c in ours.values()} >= (
        {"K-S p_value", "chi-square p_value", "Z-test p_value"}
        if n_reference <= 1000
        else {"Wasserstein distance (normed)", "Jensen-Shannon distance"}
    )


def test_psi_equals_evidentlys_psi() -> None:
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.core import ColumnType

    reference, current = _frames(3000, 2500)
    ours, _, numerical, _ = _ours(reference, current)
    for column in ("age", "sofa", "ward", "creatinine"):
        kind = ColumnType.Numerical if column in numerical else ColumnType.Categorical
        expected, _ = _psi(reference[column].dropna(), current[column].dropna(), kind, 0.1)
        assert ours[column].psi == pytest.approx(expected, rel=1e-9), column


def test_chunked_statistics_give_the_same_verdicts_and_scores() -> None:
    reference, current = _frames(5000, 4000, seed=3)
    one, _, _, _ = _ours(reference, current)
    chunked, _, _, _ = _ours(reference, current, chunk=613)
    for column, result in one.items():
        assert (chunked[column].stattest, chunked[column].drifted) == (result.stattest, result.drifted)
        assert chunked[column].score == pytest.approx(result.score, rel=1e-12, abs=1e-15)


def test_a_column_past_the_exact_limit_is_approximated_within_its_stated_bound(monkeypatch) -> None:
    import audits.engines.drift as drift

    monkeypatch.setattr(drift, "EXACT_DISTINCT_LIMIT", 500)  # force the histogram path on 5000 values
    reference, current = _frames(5000, 4000, seed=5)
    ours, _, _, _ = _ours(reference, current)
    column = ours["heart_rate"]
    assert column.approximate and column.error_bound is not None
    exact = stats.wasserstein_distance(reference["heart_rate"], current["heart_rate"]) / np.std(reference["heart_rate"])
    assert abs(column.score - exact) <= column.error_bound
    assert column.error_bound < 1e-3


def test_missing_and_infinite_values_are_left_out_as_evidently_does() -> None:
    reference, current = _frames(3000, 3000, seed=8)
    current.loc[current.index[:50], "age"] = np.inf
    ours, _, numerical, categorical = _ours(reference, current)
    theirs = _evidently(reference, current, numerical, categorical)
    assert ours["age"].current_rows == 2950
    assert ours["age"].score == pytest.approx(theirs["columns"]["age"]["score"], rel=1e-9)


def test_a_shift_hidden_by_the_whole_population_is_found_within_groups() -> None:
    from audits.engines.audit import audit_chunks
    from audits.engines.tables import ColumnRoles

    rng = np.random.default_rng(21)

    def cohort(n: int, swap: bool) -> pd.DataFrame:
        group = rng.choice(["A", "B"], n)
        high = (group == "A") if swap else (group == "B")
        score = np.clip(np.where(high, rng.normal(0.5, 0.1, n), rng.normal(0.3, 0.1, n)), 0, 1).round(4)
        return pd.DataFrame({"group": group, "score": score, "label": (rng.random(n) < score).astype(int)})

    reference, current = cohort(6000, swap=False), cohort(6000, swap=True)
    roles = ColumnRoles.from_dict({"label": "label", "score": "score", "protected": ["group"]})
    schema = [
        {"name": "group", "dtype": "string"},
        {"name": "score", "dtype": "double"},
        {"name": "label", "dtype": "int64"},
    ]
    result, _ = audit_chunks(
        [current],
        roles=roles,
        reference_chunks=[reference],
        schema=schema,
        reference_schema=schema,
        numeric_ranges={"score": (0.0, 1.0)},
    )
    overall = {c["column"]: c for c in result["drift"]["columns"]}
    assert overall["score"]["drifted"] is False
    by_group = {g["group"]: {c["column"]: c for c in g["columns"]} for g in result["drift"]["by_group"]}
    for name in ("A", "B"):
        mine = by_group[name]["score"]
        theirs = _evidently(reference[reference.group == name], current[current.group == name], ["score"], [])
        assert mine["drifted"] is True and theirs["columns"]["score"]["drifted"] is True
        assert mine["score"] == pytest.approx(theirs["columns"]["score"]["score"], rel=1e-9)
    hidden = [f for f in result["findings"] if f["metric"] == "group_drift" and f["column"] == "score"]
    assert sorted(f["group"] for f in hidden) == ["A", "B"]


def test_numeric_ranges_ignore_infinities_recorded_in_parquet_footers(tmp_path) -> None:
    import pyarrow.parquet as pq

    frame = pd.DataFrame({"lactate": [0.5, 1.2, np.inf, 7.5, -np.inf, np.nan], "age": [30, 40, 50, 60, 70, 80]})
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    assert numeric_ranges([str(path)], ["lactate", "age"]) == {"lactate": (0.5, 7.5), "age": (30.0, 80.0)}


def test_the_evidently_sample_is_drawn_while_streaming_and_equals_a_whole_file_sample(tmp_path) -> None:
    import pyarrow.parquet as pq

    from audits.engines.tables import read_parquet_sample

    frame = pd.DataFrame({"i": np.arange(250_000), "ward": np.where(np.arange(250_000) % 3 == 0, "icu", "er")})
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=100_000)
    sample = read_parquet_sample(str(path), columns=["i", "ward"], max_rows=1000, seed=7)
    expected = np.sort(np.random.default_rng(7).choice(250_000, size=1000, replace=False))
    assert sample["i"].tolist() == expected.tolist()
    assert sample["ward"].tolist() == frame["ward"].iloc[expected].tolist()
    assert len(read_parquet_sample(str(path), columns=["i"], max_rows=300_000)) == 250_000
