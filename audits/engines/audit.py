"""One audit from start to finish on plain data: the engines composed, no Django."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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


@dataclass
class AuditPlan:
    """What every pass over the data must agree on, decided once before any row is read.

    Stored with a partitioned run (`to_dict`), so that every partition task, on any machine,
    reads its rows the same way and the merge sees statistics that add up.
    """

    roles: ColumnRoles
    policy: Policy
    score_is_probability: bool = True
    numerical: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    numeric_ranges: dict[str, tuple[float, float]] | None = None

    @property
    def group_columns(self) -> list[str]:
        """Within each protected group, the model's outputs and the label are followed."""
        roles, drifting = self.roles, {*self.numerical, *self.categorical}
        return [c for c in (roles.score, roles.prediction, roles.label) if c and c in drifting]

    @property
    def audit_label_choice(self) -> bool:
        return bool(self.roles.alternative_outcome and self.roles.score)

    def to_dict(self) -> dict[str, Any]:
        return {
            "roles": self.roles.to_dict(),
            "policy": self.policy.to_dict(),
            "score_is_probability": self.score_is_probability,
            "numerical": self.numerical,
            "categorical": self.categorical,
            "numeric_ranges": None
            if self.numeric_ranges is None
            else {c: list(bounds) for c, bounds in self.numeric_ranges.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditPlan:
        ranges = data.get("numeric_ranges")
        return cls(
            roles=ColumnRoles.from_dict(data["roles"]),
            policy=Policy.from_dict(data["policy"]),
            score_is_probability=data["score_is_probability"],
            numerical=list(data["numerical"]),
            categorical=list(data["categorical"]),
            numeric_ranges=None if ranges is None else {c: (float(lo), float(hi)) for c, (lo, hi) in ranges.items()},
        )


@dataclass
class ReferenceStatistics:
    """The reference's quality profile and drift statistics, merged over any split of its rows."""

    quality: QualityStatistics = field(default_factory=QualityStatistics)
    drift: DriftStatistics = field(default_factory=DriftStatistics)

    def merge(self, other: ReferenceStatistics) -> ReferenceStatistics:
        return ReferenceStatistics(self.quality.merge(other.quality), self.drift.merge(other.drift))


@dataclass
class DataStatistics:
    """Every engine's sufficient statistics of the audited rows, merged over any split of them."""

    fairness: FairnessStatistics = field(default_factory=FairnessStatistics)
    quality: QualityStatistics = field(default_factory=QualityStatistics)
    drift: DriftStatistics = field(default_factory=DriftStatistics)
    label_choice: LabelChoiceStatistics = field(default_factory=LabelChoiceStatistics)

    def merge(self, other: DataStatistics) -> DataStatistics:
        return DataStatistics(
            self.fairness.merge(other.fairness),
            self.quality.merge(other.quality),
            self.drift.merge(other.drift),
            self.label_choice.merge(other.label_choice),
        )


def _drift_of(chunk: pd.DataFrame, plan: AuditPlan) -> DriftStatistics:
    return drift_statistics(
        chunk,
        numerical=plan.numerical,
        categorical=plan.categorical,
        ranges=plan.numeric_ranges,
        protected=plan.roles.protected_columns,
        group_columns=plan.group_columns,
    )


def reference_statistics(
    chunks: Iterable[pd.DataFrame], plan: AuditPlan, *, on_progress: Callable[[str, int], None] | None = None
) -> ReferenceStatistics:
    """Statistics of (part of) the reference: its quality profile (ranges, categories) and drift sketches."""
    statistics = ReferenceStatistics()
    for chunk in chunks:
        statistics = statistics.merge(
            ReferenceStatistics(quality_statistics(chunk, hash_rows=False), _drift_of(chunk, plan))
        )
        if on_progress:
            on_progress("reading the reference", statistics.quality.rows)
    return statistics


def data_statistics(
    chunks: Iterable[pd.DataFrame],
    plan: AuditPlan,
    *,
    ranges: dict[str, tuple[float, float]] | None = None,
    drift: bool = False,
    on_progress: Callable[[str, int], None] | None = None,
) -> DataStatistics:
    """Statistics of (part of) the audited data, chunk by chunk.

    Against a reference: `ranges` are its numeric ranges (quality counts values outside them), and
    `drift` asks for the drift sketches too.
    """
    roles, policy = plan.roles, plan.policy
    statistics = DataStatistics()
    for chunk in chunks:
        label_choice = LabelChoiceStatistics()
        if plan.audit_label_choice:
            label_choice = label_choice_statistics(
                chunk,
                score=roles.score,  # type: ignore[arg-type]
                alternative_outcome=roles.alternative_outcome,  # type: ignore[arg-type]
                protected=roles.protected_columns,
                score_is_probability=plan.score_is_probability,
            )
        fairness = fairness_statistics(
            chunk,
            label=roles.label,
            prediction=roles.prediction,
            protected=roles.protected_columns,
            score=roles.score,
            score_is_probability=plan.score_is_probability,
            operating_point=policy.operating_point,
            intersection_order=policy.intersection_order,
        )
        quality = quality_statistics(chunk, protected=roles.protected_columns, reference_ranges=ranges)
        sketches = _drift_of(chunk, plan) if drift else DriftStatistics()
        statistics = statistics.merge(DataStatistics(fairness, quality, sketches, label_choice))
        if on_progress:
            on_progress("reading the data", statistics.quality.rows)
    return statistics


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
    """Audit a dataset given as chunks of rows, in one pass; returns the result document and Evidently's snapshot.

    1. The reference, if any, is read first, chunk by chunk: its quality profile (ranges,
       categories) and its drift statistics.
    2. Each chunk of the audited data becomes fairness, label-choice, quality and drift
       statistics, merged as they come.
    3. `audit_report` computes metrics, intervals, tests, findings and the verdict from them.

    A partitioned audit does steps 1 and 2 per partition, on many workers, and step 3 once on
    the merged statistics (audits.services.partitions): the same functions, so the same answer.
    `on_progress(step, rows)` hears of each chunk: the step under way and the rows it has read so far.
    """
    plan = AuditPlan(roles, policy or Policy(), score_is_probability, numeric_ranges=numeric_ranges)
    reference = None
    if reference_chunks is not None:
        if schema is None or reference_schema is None:
            raise ValueError("a reference needs the schemas of both datasets")
        plan.numerical, plan.categorical = drift_column_types(roles, schema, reference_schema)
        reference = reference_statistics(reference_chunks, plan, on_progress=on_progress)
    ranges = reference_ranges(reference.quality) if reference is not None else None
    data = data_statistics(chunks, plan, ranges=ranges, drift=reference is not None, on_progress=on_progress)
    return audit_report(
        data,
        plan,
        reference=reference,
        schema=schema,
        reference_schema=reference_schema,
        identifiers=identifiers,
        evidently_sample=evidently_sample,
        on_progress=on_progress,
    )


def audit_report(
    data: DataStatistics,
    plan: AuditPlan,
    *,
    reference: ReferenceStatistics | None = None,
    schema: list[dict[str, str]] | None = None,
    reference_schema: list[dict[str, str]] | None = None,
    identifiers: list[dict[str, Any]] | None = None,
    evidently_sample: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    on_progress: Callable[[str, int], None] | None = None,
) -> tuple[dict[str, Any], Any]:
    """The result document from merged statistics: metrics, intervals, tests, findings and the verdict.

    With an Evidently sample (reference, current), Evidently also renders its interactive report.
    """
    roles, policy = plan.roles, plan.policy
    if on_progress:
        on_progress("computing metrics, intervals and tests", data.quality.rows)
    fairness = fairness_report(data.fairness, references=roles.references, policy=policy)
    label_choice = (
        label_choice_report(
            data.label_choice,
            references=fairness.references,
            alternative_outcome=roles.alternative_outcome,  # type: ignore[arg-type]
            min_group_size=policy.min_group_size,
        )
        if plan.audit_label_choice
        else None
    )
    quality = quality_report(
        data.quality,
        reference=reference.quality if reference is not None else None,
        schema=schema,
        reference_schema=reference_schema,
        references=fairness.references,
        identifiers=identifiers,
    )
    drift = None
    if reference is not None:
        drift = drift_report(
            reference.drift,
            data.drift,
            columns=[*plan.numerical, *plan.categorical],
            reference_rows=reference.quality.rows,
            current_rows=quality.rows,
        ).to_dict()
        drift["by_group"] = group_drift_report(reference.drift, data.drift, min_group_size=policy.min_group_size)

    snapshot = None
    if evidently_sample is not None and (plan.numerical or plan.categorical):
        if on_progress:
            on_progress("rendering Evidently's drift report", quality.rows)
        snapshot = drift_snapshot(*evidently_sample, numerical=plan.numerical, categorical=plan.categorical)
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
        "score_is_probability": plan.score_is_probability if roles.score else None,
        "fairness": fairness_dict,
        "label_choice": label_choice,
        "drift": drift,
        "quality": quality_dict,
        "findings": findings,
        "verdict": verdict(findings, policy),
        "engine_versions": engine_versions(),
    }
    return result, snapshot
