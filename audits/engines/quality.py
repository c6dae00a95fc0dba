"""Data quality of one dataset: missing values per column and duplicate rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class QualityStatistics:
    """Row count, missing count per column and one 64-bit hash per row, mergeable across chunks."""

    rows: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    row_hashes: list[np.ndarray] = field(default_factory=list)

    def merge(self, other: QualityStatistics) -> QualityStatistics:
        missing = dict(self.missing)
        for column, count in other.missing.items():
            missing[column] = missing.get(column, 0) + count
        return QualityStatistics(self.rows + other.rows, missing, [*self.row_hashes, *other.row_hashes])


@dataclass
class ColumnQuality:
    column: str
    missing: int
    missing_share: float


@dataclass
class QualityResult:
    rows: int
    columns: list[ColumnQuality]
    duplicate_rows: int
    duplicate_share: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "columns": [asdict(c) for c in self.columns],
            "duplicate_rows": self.duplicate_rows,
            "duplicate_share": self.duplicate_share,
        }


def quality_statistics(frame: pd.DataFrame) -> QualityStatistics:
    """Missing values per column, and a hash of every row for finding duplicates later."""
    missing = {str(column): int(count) for column, count in frame.isna().sum().items()}
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)
    return QualityStatistics(rows=len(frame), missing=missing, row_hashes=[hashes])


def quality_report(statistics: QualityStatistics) -> QualityResult:
    """Missing share per column and the number of rows that repeat an earlier row exactly."""
    rows = statistics.rows
    hashes = np.concatenate(statistics.row_hashes) if statistics.row_hashes else np.empty(0, dtype=np.uint64)
    # 64-bit row hashes: the chance of a false duplicate among 10M rows is about 3e-6.
    duplicates = int(len(hashes) - len(np.unique(hashes)))
    columns = [
        ColumnQuality(column, count, count / rows if rows else 0.0) for column, count in statistics.missing.items()
    ]
    return QualityResult(
        rows=rows,
        columns=columns,
        duplicate_rows=duplicates,
        duplicate_share=duplicates / rows if rows else 0.0,
    )
