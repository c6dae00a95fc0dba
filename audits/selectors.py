"""Reads of audit runs, scoped to what the caller may see."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.db.models.functions import Coalesce

from audits.models import Alert, AuditRun, AuditSchedule, Finding, MetricResult, PredictionBatch
from governance.models import AIModel, ApiToken, ModelVersion
from governance.selectors import organizations_visible


def audit_runs_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[AuditRun]:
    return AuditRun.objects.filter(organization__in=organizations_visible(user, token=token)).select_related(
        "organization", "model_version", "model_version__ai_model", "dataset", "reference_dataset"
    )


def audit_run_verdict(run: AuditRun) -> dict[str, Any]:
    """The gate's answer for a run: its own verdict and findings, and the comparison with the deployed version.

    1. Until the run is finished the answer is `pending` (or `error` if it failed).
    2. The baseline is the model's deployed version (the latest to enter that stage), through its
       latest succeeded run, preferring one on the same dataset.
    3. The overall verdict fails when the run's policy verdict fails or any group is worse than the
       deployed version's beyond the policy's non-inferiority margin.
    """
    from audits.engines.comparison import compare_with_deployed
    from audits.engines.policy import Policy

    answer: dict[str, Any] = {
        "run": run.pk,
        "status": run.status,
        "verdict": run.verdict or None,
        "findings": [],
        "comparison": None,
        "overall": "pending",
    }
    if run.status == AuditRun.Status.FAILED:
        answer.update(overall="error", error=run.error)
        return answer
    if run.status != AuditRun.Status.SUCCEEDED or not run.result:
        return answer
    answer["findings"] = list(
        run.findings.exclude(severity="info").values(
            "severity", "category", "metric", "attribute", "group", "column", "value", "ci_low", "ci_high", "message"
        )
    )
    deployed = (
        ModelVersion.objects.filter(ai_model_id=run.model_version.ai_model_id, stage=ModelVersion.Stage.DEPLOYED)
        .exclude(pk=run.model_version_id)
        .order_by("-stage_changed_at", "-pk")
        .first()
    )
    comparison: dict[str, Any]
    if deployed is None:
        comparison = {"verdict": "no_baseline", "reason": "no other version of this model is deployed"}
    else:
        finished = deployed.audit_runs.filter(status=AuditRun.Status.SUCCEEDED).order_by("-finished_at")
        baseline = finished.filter(dataset_id=run.dataset_id).first() or finished.first()
        if baseline is None or not baseline.result:
            comparison = {
                "verdict": "no_baseline",
                "reason": f"deployed version {deployed.version} has no finished audit",
            }
        else:
            comparison = compare_with_deployed(run.result, baseline.result, Policy.from_dict(run.result["policy"]))
            comparison.update(
                deployed_version={"id": deployed.pk, "version": deployed.version},
                deployed_run=baseline.pk,
                same_dataset=baseline.dataset_id == run.dataset_id,
            )
    answer["comparison"] = comparison
    answer["overall"] = "fail" if run.verdict == "fail" or comparison["verdict"] == "fail" else "pass"
    return answer


def audit_run_progress(run: AuditRun) -> dict[str, Any]:
    """How far a run has got, for its page: the step, rows read of how many, and for how long it has been at it."""
    from django.utils import timezone

    totals = {"reading the reference": run.reference_dataset, "reading the data": run.dataset}
    # A fanned-out run's step reads "reading the data: 3 of 10 partitions done".
    source = totals.get(run.progress.split(":", 1)[0]) if run.status == AuditRun.Status.RUNNING else None
    total = source.row_count if source is not None else None
    progress: dict[str, Any] = {"step": run.progress, "rows": run.rows_read, "total": total, "percent": None}
    if run.plan is not None:
        # One row per task of the attempt: what each partition costs, where, and how many tries it took.
        progress["tasks"] = list(run.tasks.filter(attempt=run.attempt).select_related("partition").order_by("pk"))
    if total:
        progress["percent"] = min(100, round(100 * run.rows_read / total))
    if not run.is_finished:
        since = run.started_at if run.status == AuditRun.Status.RUNNING and run.started_at else run.created_at
        progress["waited_seconds"] = round((timezone.now() - since).total_seconds())
    return progress


def findings_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[Finding]:
    return Finding.objects.filter(run__organization__in=organizations_visible(user, token=token)).select_related(
        "run", "run__organization"
    )


def prediction_batches_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[PredictionBatch]:
    return PredictionBatch.objects.filter(organization__in=organizations_visible(user, token=token)).select_related(
        "model_version", "model_version__ai_model"
    )


def audit_schedules_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[AuditSchedule]:
    return AuditSchedule.objects.filter(organization__in=organizations_visible(user, token=token)).select_related(
        "ai_model", "model_version", "reference_dataset", "last_run"
    )


def alerts_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[Alert]:
    return Alert.objects.filter(organization__in=organizations_visible(user, token=token)).select_related("ai_model")


SERIES_KEY = ("attribute", "group", "reference_group", "column")


def metric_series(
    *,
    ai_model: AIModel,
    metric: str,
    attribute: str | None = None,
    group: str | None = None,
    model_version_id: int | None = None,
    schedule_id: int | None = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """A metric over the model's succeeded runs, one series per group (or column), with the change between windows.

    A point's time is the end of the run's window of the production stream, or, for a run of a fixed
    dataset, the time it finished. Each series carries the change between consecutive points with its
    MOVER interval (engines.trends); the policy's current bound on the metric is given for charts.
    """
    from audits.engines.trends import series_changes
    from audits.services.policies import audit_policy_for_model

    rows = MetricResult.objects.filter(
        run__model_version__ai_model=ai_model, run__status=AuditRun.Status.SUCCEEDED, metric=metric
    ).annotate(at=Coalesce("run__window_end", "run__finished_at"))
    if attribute is not None:
        rows = rows.filter(attribute=attribute)
    if group is not None:
        rows = rows.filter(group=group)
    if model_version_id is not None:
        rows = rows.filter(run__model_version_id=model_version_id)
    if schedule_id is not None:
        rows = rows.filter(run__schedule_id=schedule_id)
    if since is not None:
        rows = rows.filter(at__gte=since)
    series: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows.order_by("at", "run_id").values(
        "run_id",
        "run__model_version__version",
        "run__schedule_id",
        "run__window_start",
        "run__window_end",
        "at",
        *SERIES_KEY,
        "value",
        "ci_low",
        "ci_high",
        "n",
        "status",
        "p_value",
    ):
        key = tuple(row[k] for k in SERIES_KEY)
        entry = series.setdefault(key, {**{k: row[k] for k in SERIES_KEY}, "points": []})
        entry["points"].append(
            {
                "run": row["run_id"],
                "model_version": row["run__model_version__version"],
                "schedule": row["run__schedule_id"],
                "at": row["at"],
                "window_start": row["run__window_start"],
                "window_end": row["run__window_end"],
                "value": row["value"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "n": row["n"],
                "status": row["status"],
                "p_value": row["p_value"],
            }
        )
    for entry in series.values():
        entry["changes"] = series_changes(metric, entry["points"])
    bound = audit_policy_for_model(ai_model).bounds.get(metric)
    return {
        "metric": metric,
        "bound": None if bound is None else {"low": bound.low, "high": bound.high, "severity": bound.severity},
        "series": list(series.values()),
    }


def metrics_of_model(ai_model: AIModel) -> list[str]:
    """The metrics the model's succeeded runs have produced, for telling a caller what to ask for."""
    return sorted(
        set(
            MetricResult.objects.filter(
                run__model_version__ai_model=ai_model, run__status=AuditRun.Status.SUCCEEDED
            ).values_list("metric", flat=True)
        )
    )
