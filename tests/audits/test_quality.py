"""Data quality figures against hand counts, and chunked against one pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from audits.engines.quality import QualityStatistics, quality_report, quality_statistics


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


def test_an_empty_statistics_object_reports_zero_rows() -> None:
    result = quality_report(QualityStatistics())
    assert (result.rows, result.duplicate_rows, result.duplicate_share) == (0, 0, 0.0)
    assert result.columns == []
    assert quality_report(quality_statistics(pd.DataFrame({"a": [1.0]}))).columns[0].missing_share == pytest.approx(0)
