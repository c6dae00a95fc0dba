"""Evidently itself: the interactive HTML drift report of a run, and the reference the tests hold the
drift engine to. Evidently holds whole columns in memory, so it is given a sample on large data."""

from __future__ import annotations

from typing import Any

import pandas as pd

from audits.engines.drift import DATASET_DRIFT_SHARE


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


def evidently_verdicts(snapshot: Any) -> dict[str, Any]:
    """Evidently's per-column method, threshold, score and verdict, and its share of drifted columns."""
    data = snapshot.dict()
    verdicts: dict[str, bool] = {}
    for test in data.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            verdicts[params["column"]] = test["status"] == "FAIL"
    columns: dict[str, dict[str, Any]] = {}
    share = 0.0
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"] == "evidently:metric_v2:DriftedColumnsCount":
            share = float(metric["value"]["share"])
        elif config["type"] == "evidently:metric_v2:ValueDrift":
            columns[config["column"]] = {
                "stattest": config["method"],
                "threshold": float(config["threshold"]),
                "score": float(metric["value"]),
                "drifted": verdicts[config["column"]],
            }
    return {"columns": columns, "share_drifted": share}
