"""Distribution drift of each column against the reference, with Evidently's DataDriftPreset.

Evidently chooses the statistical test per column (by type, size and number of
distinct values), applies its default threshold and gives the verdict; this module
runs it and turns its snapshot into plain records. Evidently holds whole columns in
memory, so callers cap the rows they pass (see AUDIT_DRIFT_MAX_ROWS).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

DATASET_DRIFT_SHARE = 0.5


@dataclass
class ColumnDrift:
    column: str
    column_type: str
    stattest: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    columns: list[ColumnDrift]
    share_drifted: float
    dataset_drift: bool
    drift_share_threshold: float
    reference_rows: int
    current_rows: int
    sampled: bool = False

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["columns"] = [asdict(c) for c in self.columns]
        return result


def drift_snapshot(
    reference: pd.DataFrame, current: pd.DataFrame, *, numerical: list[str], categorical: list[str]
) -> Any:
    """Run Evidently's DataDriftPreset (with its per-column tests) on the given columns."""
    from evidently import DataDefinition, Report
    from evidently import Dataset as EvidentlyDataset
    from evidently.presets import DataDriftPreset

    columns = [*numerical, *categorical]
    definition = DataDefinition(numerical_columns=list(numerical), categorical_columns=list(categorical))
    report = Report([DataDriftPreset(columns=columns, drift_share=DATASET_DRIFT_SHARE)], include_tests=True)
    return report.run(
        EvidentlyDataset.from_pandas(current[columns], data_definition=definition),
        EvidentlyDataset.from_pandas(reference[columns], data_definition=definition),
    )


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    numerical: list[str],
    categorical: list[str],
    sampled: bool = False,
) -> tuple[DriftResult, Any]:
    """Per-column drift verdicts and the dataset-drift verdict, with the snapshot for HTML rendering."""
    snapshot = drift_snapshot(reference, current, numerical=numerical, categorical=categorical)
    return drift_result_from_snapshot(
        snapshot.dict(),
        numerical=numerical,
        reference_rows=len(reference),
        current_rows=len(current),
        sampled=sampled,
    ), snapshot


def drift_result_from_snapshot(
    snapshot: dict[str, Any], *, numerical: list[str], reference_rows: int, current_rows: int, sampled: bool
) -> DriftResult:
    """Read Evidently's per-column scores, methods, thresholds and test verdicts from its snapshot dict."""
    verdicts: dict[str, bool] = {}
    for test in snapshot.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            verdicts[params["column"]] = test["status"] == "FAIL"
    columns: list[ColumnDrift] = []
    share = 0.0
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"] == "evidently:metric_v2:DriftedColumnsCount":
            share = float(metric["value"]["share"])
        elif config["type"] == "evidently:metric_v2:ValueDrift":
            name = config["column"]
            columns.append(
                ColumnDrift(
                    column=name,
                    column_type="numerical" if name in numerical else "categorical",
                    stattest=config["method"],
                    score=float(metric["value"]),
                    threshold=float(config["threshold"]),
                    drifted=verdicts[name],
                )
            )
    return DriftResult(
        columns=columns,
        share_drifted=share,
        dataset_drift=share >= DATASET_DRIFT_SHARE,
        drift_share_threshold=DATASET_DRIFT_SHARE,
        reference_rows=reference_rows,
        current_rows=current_rows,
        sampled=sampled,
    )


def split_column_types(
    frame: pd.DataFrame, columns: list[str], *, categorical_columns: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Numerical columns (numbers other than booleans, unless declared categorical) and categorical ones."""
    declared = set(categorical_columns)
    numerical, categorical = [], []
    for column in columns:
        series = frame[column]
        if column in declared:
            categorical.append(column)
        elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numerical.append(column)
        else:
            categorical.append(column)
    return numerical, categorical
