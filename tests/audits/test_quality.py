"""Data quality figures against hand counts, and chunked against one pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from audits.engines.quality import (
    QualityStatistics,
    quality_report,
    quality_statistics,
    reference_ranges,
    schema_changes,
)


def test_missing_share_and_duplicates_match_a_hand_count() -> None:
    frame = pd.DataFrame(
        {
            "age": [70, np.nan, 55, 70, np.nan],
            "ward": ["icu", "icu", None, "icu", "medical"],
        }
    )
    result = quality_report(quality_statistics(frame))
    shares = {c.column: (c.missing, c.missing_share) for c in result.columns}
    assert shares == {"age": (2, 0.4), "ward": (1, 0.2)}
    # Row 4 repeats row 1 exactly.
    assert (result.duplicate_rows, result.duplicate_share) == (1, 0.2)


def test_duplicates_are_found_across_chunk_boundaries() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3, 1, 2, 9], "b": ["x", "y", "z", "x", "y", "x"]})
    merged = QualityStatistics()
    for start in range(0, 6, 2):
        merged = merged.merge(quality_statistics(frame.iloc[start : start + 2]))
    one_pass = quality_report(quality_statistics(frame))
    chunked = quality_report(merged)
    assert chunked == one_pass
    assert chunked.duplicate_rows == 2


def test_schema_changes_name_missing_new_and_retyped_columns() -> None:
    reference = [
        {"name": "age", "dtype": "int64"},
        {"name": "ward", "dtype": "string"},
        {"name": "bmi", "dtype": "double"},
    ]
    current = [
        {"name": "age", "dtype": "int32"},
        {"name": "ward", "dtype": "int64"},
        {"name": "egfr", "dtype": "double"},
    ]
    assert schema_changes(current, reference) == {
        "missing_columns": ["bmi"],
        "new_columns": ["egfr"],
        "type_changes": [{"column": "ward", "reference": "string", "current": "int64"}],
    }


def test_out_of_range_unseen_and_constant_columns_against_a_reference() -> None:
    reference = pd.DataFrame({"age": [20, 45, 70, 90], "ward": ["icu", "medical", "icu", "surgical"], "site": "A"})
    current = pd.DataFrame(
        {"age": [19, 30, 95, 60, np.nan], "ward": ["icu", "oncology", "oncology", "icu", "er"], "site": "A"}
    )
    reference_stats = quality_statistics(reference, hash_rows=False)
    statistics = quality_statistics(current, reference_ranges=reference_ranges(reference_stats))
    columns = {c.column: c for c in quality_report(statistics, reference=reference_stats).columns}
    assert (columns["age"].out_of_range, columns["age"].out_of_range_share) == (2, 0.5)  # 19 and 95 of 4 known
    assert (columns["ward"].unseen_categories, columns["ward"].unseen_rows, columns["ward"].unseen_share) == (2, 3, 0.6)
    assert columns["ward"].unseen_examples == ["oncology", "er"]
    assert columns["site"].constant and not columns["ward"].constant


def test_differential_missingness_compares_each_group_with_the_reference_group() -> None:
    frame = pd.DataFrame(
        {
            "race": ["A"] * 100 + ["B"] * 50,
            "hba1c": [1.0] * 90 + [np.nan] * 10 + [1.0] * 30 + [np.nan] * 20,
        }
    )
    result = quality_report(quality_statistics(frame, protected=["race"]), references={"race": "A"})
    (row,) = result.differential_missingness
    assert (row["group"], row["column"], row["missing_share"], row["reference_missing_share"]) == (
        "B",
        "hba1c",
        0.4,
        0.1,
    )
    assert row["difference"] == pytest.approx(0.3)
    expected = confint_proportions_2indep(20, 50, 10, 100, method="newcomb", compare="diff")
    assert row["ci"] == pytest.approx(expected, abs=1e-12)


def test_an_empty_statistics_object_reports_zero_rows() -> None:
    result = quality_report(QualityStatistics())
    assert (result.rows, result.duplicate_rows, result.duplicate_share) == (0, 0, 0.0)
    assert result.columns == []
    assert quality_report(quality_statistics(pd.DataFrame({"a": [1.0]}))).columns[0].missing_share == pytest.approx(0)
