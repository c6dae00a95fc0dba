"""One audit from start to finish on plain data: the engines composed, no Django."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import pandas as pd

from audits.engines.drift import DriftStatistics, drift_report, drift_statistics, group_drift_report
from audits.engines.evidently_report import drift_snapshot
from audits.engines.fairness import FairnessStatistics, fairness_report, fairness_statistics
from audits.engines.findings import (
    drift_findings,
    fairness_findings,
    label_choice_findings,
    quality_findings,
    sort_findings,
    verdict,
)
from audits.engines.label_choice import LabelChoiceStatistics, label_choice_report, label_choice_statistics
from audits.engines.policy import Policy
from audits.engines.quality import QualityStatistics, quality_report, quality_statistics, reference_ranges
from audits.engines.tables import ColumnRoles

RESULT_SCHEMA_VERSION = 2


def engine_versions() -> dict[str, str]:
    """Versions of the libraries whose definitions and tests the results follow."""
    versions = {}
    for package in ("aif360", "evidently", "pandas", "numpy", "pyarrow", "scipy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def drift_columns(roles: ColumnRoles, available: list[str]) -> list[str]:
    """The columns whose drift matters: features, score, prediction and label, as present."""
    wanted = [*roles.features, roles.score, roles.prediction, roles.label]  # prediction may be None
    return [c for c in dict.fromkeys(wanted) if c and c in available]


NUMERIC_TYPES = ("int", "uint", "float", "double", "halffloat", "decimal")


def drift_column_types(
    roles: ColumnRoles, schema: list[dict[str, str]], reference_schema: list[dict[str, str]]
) -> tuple[list[str], list[str]]:
    """The drift columns present in both datasets, split into numerical and categorical.

    A column is numerical when its stored type is a number, unless it is declared categorical;
    the label and the prediction are classes, whatever their type.
    """
    types = {c["name"]: c["dtype"] for c in schema}
    in_reference = {c["name"] for c in reference_schema}
    declared = {c for c in (*roles.categorical, roles.label, roles.prediction) if c}
    numerical, categorical = [], []
    for column in drift_columns(roles, list(types)):
        if column not in in_reference:
            continue
        if column not in declared and types[column].startswith(NUMERIC_TYPES):
            numerical.append(column)
        else:
            categorical.append(column)
    return numerical, categorical


def audit_chunks(
    chunks: Iterable[pd.DataFrame],
    *,
    roles: ColumnRoles,
    policy: Policy | None = None,
    score_is_probability: bool = True,
    reference_chunks: Iterable[pd.DataFrame] | None = None,
    schema: list[dict[str, str]] | None = None,
    reference_schema: list[dict[str, str]] | None = None,
    numeric_ranges: dict[str, tuple[float, float]] | None = None,
    identifiers: list[dict[str, Any]] | None = None,
    evidently_sample: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    on_progress: Callable[[str, int], None] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Audit a dataset given as chunks of rows; returns the result document and Evidently's snapshot.

    1. The reference, if any, is read first, chunk by chunk: its quality profile (ranges,
       categories) and its drift statistics.
    2. Each chunk of the audited data becomes fairness, label-choice, quality and drift
       statistics, merged as they come.
    3. Metrics, intervals, tests and verdicts are computed from the merged statistics.
    4. The policy turns breaches into findings, and the findings into a verdict.
    5. With an Evidently sample (reference, current), Evidently renders its interactive report.

    `on_progress(step, rows)` hears of each chunk: the step under way and the rows it has read so far.
    """
    policy = policy or Policy()
    numerical: list[str] = []
    categorical: list[str] = []
    group_columns: list[str] = []
    reference_quality = reference_drift = None

    def drift_of(chunk: pd.DataFrame) -> DriftStatistics:
        return drift_statistics(
            chunk,
            numerical=numerical,
            categorical=categorical,
            ranges=numeric_ranges,
            protected=roles.protected_columns,
            group_columns=group_columns,
        )

    if reference_chunks is not None:
        if schema is None or reference_schema is None:
            raise ValueError("a reference needs the schemas of both datasets")
        numerical, categorical = drift_column_types(roles, schema, reference_schema)
        # Within each protected group, the model's outputs and the label are followed.
        group_columns = [c for c in (roles.score, roles.prediction, roles.label) if c in (*numerical, *categorical)]
        reference_quality, reference_drift = QualityStatistics(), DriftStatistics()
        for chunk in reference_chunks:
            reference_quality = reference_quality.merge(quality_statistics(chunk, hash_rows=False))
            reference_drift = reference_drift.merge(drift_of(chunk))
            if on_progress:
                on_progress("reading the reference", reference_quality.rows)
    ranges = reference_ranges(reference_quality) if reference_quality else None
    fairness_stats = FairnessStatistics()
    quality_stats = QualityStatistics()
    drift_stats = DriftStatistics()
    label_choice_stats = LabelChoiceStatistics()
    audit_label_choice = bool(roles.alternative_outcome and roles.score)
    for chunk in chunks:
        if audit_label_choice:
            label_choice_stats = label_choice_stats.merge(
                label_choice_statistics(
                    chunk,
                    score=roles.score,  # type: ignore[arg-type]
                    alternative_outcome=roles.alternative_outcome,  # type: ignore[arg-type]
                    protected=roles.protected_columns,
                    score_is_probability=score_is_probability,
                )
            )
        fairness_stats = fairness_stats.merge(
            fairness_statistics(
                chunk,
                label=roles.label,
                prediction=roles.prediction,
                protected=roles.protected_columns,
                score=roles.score,
                score_is_probability=score_is_probability,
                operating_point=policy.operating_point,
                intersection_order=policy.intersection_order,
            )
        )
        quality_stats = quality_stats.merge(
            quality_statistics(chunk, protected=roles.protected_columns, reference_ranges=ranges)
        )
        if reference_drift is not None:
            drift_stats = drift_stats.merge(drift_of(chunk))
        if on_progress:
            on_progress("reading the data", quality_stats.rows)

    if on_progress:
        on_progress("computing metrics, intervals and tests", quality_stats.rows)
    fairness = fairness_report(fairness_stats, references=roles.references, policy=policy)
    label_choice = (
        label_choice_report(
            label_choice_stats,
            references=fairness.references,
            alternative_outcome=roles.alternative_outcome,  # type: ignore[arg-type]
            min_group_size=policy.min_group_size,
        )
        if audit_label_choice
        else None
    )
    quality = quality_report(
        quality_stats,
        reference=reference_quality,
        schema=schema,
        reference_schema=reference_schema,
        references=fairness.references,
        identifiers=identifiers,
    )
    drift = None
    if reference_drift is not None:
        drift = drift_report(
            reference_drift,
            drift_stats,
            columns=[*numerical, *categorical],
            reference_rows=reference_quality.rows if reference_quality else 0,
            current_rows=quality.rows,
        ).to_dict()
        drift["by_group"] = group_drift_report(reference_drift, drift_stats, min_group_size=policy.min_group_size)

    snapshot = None
    if evidently_sample is not None and (numerical or categorical):
        if on_progress:
            on_progress("rendering Evidently's drift report", quality.rows)
        snapshot = drift_snapshot(*evidently_sample, numerical=numerical, categorical=categorical)
        if drift is not None:
            drift["evidently_report_rows"] = {
                "reference": len(evidently_sample[0]),
                "current": len(evidently_sample[1]),
            }

    fairness_dict, quality_dict = fairness.to_dict(), quality.to_dict()
    findings = sort_findings(
        [
            *fairness_findings(fairness_dict, policy),
            *label_choice_findings(label_choice),
            *drift_findings(drift, roles.to_dict(), policy),
            *quality_findings(quality_dict, policy),
        ]
    )
    result = {
        "schema_version": RESULT_SCHEMA_VERSION,
        "rows": quality.rows,
        "column_roles": roles.to_dict(),
        "policy": policy.to_dict(),
        "score_is_probability": score_is_probability if roles.score else None,
        "fairness": fairness_dict,
        "label_choice": label_choice,
        "drift": drift,
        "quality": quality_dict,
        "findings": findings,
        "verdict": verdict(findings, policy),
        "engine_versions": engine_versions(),
    }
    return result, snapshot
