"""One audit from start to finish on plain data: the engines composed, no Django."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import pandas as pd

from audits.engines.drift import drift_report, split_column_types
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


def audit_chunks(
    chunks: Iterable[pd.DataFrame],
    *,
    roles: ColumnRoles,
    policy: Policy | None = None,
    score_is_probability: bool = True,
    reference_chunks: Iterable[pd.DataFrame] | None = None,
    schema: list[dict[str, str]] | None = None,
    reference_schema: list[dict[str, str]] | None = None,
    identifiers: list[dict[str, Any]] | None = None,
    drift_current: pd.DataFrame | None = None,
    drift_reference: pd.DataFrame | None = None,
    drift_sampled: bool = False,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], Any]:
    """Audit a dataset given as chunks of rows; returns the result document and Evidently's snapshot.

    1. Each chunk becomes fairness and quality statistics, merged as they come.
    2. Fairness metrics and quality figures are computed from the merged statistics.
    3. With a reference, drift is computed by Evidently on the drift columns.
    4. The policy turns breaches into findings, and the findings into a verdict.
    """
    policy = policy or Policy()
    reference_quality = None
    if reference_chunks is not None:
        reference_quality = QualityStatistics()
        for chunk in reference_chunks:
            reference_quality = reference_quality.merge(quality_statistics(chunk, hash_rows=False))
    ranges = reference_ranges(reference_quality) if reference_quality else None
    fairness_stats = FairnessStatistics()
    quality_stats = QualityStatistics()
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
    if on_progress:
        on_progress("fairness and quality computed")
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

    drift: dict[str, Any] | None = None
    snapshot = None
    if drift_current is not None and drift_reference is not None:
        columns = [c for c in drift_columns(roles, list(drift_current.columns)) if c in drift_reference.columns]
        # The label and the prediction are classes, whatever their dtype.
        categorical_columns = {c for c in (*roles.categorical, roles.label, roles.prediction) if c}
        numerical, categorical = split_column_types(drift_reference, columns, categorical_columns=categorical_columns)
        drift_result, snapshot = drift_report(
            drift_reference, drift_current, numerical=numerical, categorical=categorical, sampled=drift_sampled
        )
        drift = drift_result.to_dict()
        if on_progress:
            on_progress("drift computed")

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
