"""Monitoring reports: a deployed model over a period, from its production audits, alerts and lifecycle."""

from __future__ import annotations

import calendar
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.utils import timezone

from audits.models import Alert, AuditRun, Finding
from audits.selectors import metric_series
from governance.models import WRITE_ROLES, AIModel, Dataset, GovernanceEvent, ModelVersion
from governance.services import ServiceError, SystemActor, require_role
from reports.models import Report
from reports.services.runs import report_freeze

logger = logging.getLogger(__name__)

MONTHLY = SystemActor("monthly monitoring report")
# The metrics a monitoring report follows over time, for each group of each single protected attribute.
TREND_METRICS = ("disparate_impact", "equal_opportunity_difference", "true_positive_rate", "auroc")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _published(series: dict[str, Any], runs: set[int], threshold: int) -> dict[str, Any]:
    """A series cut to the period's production runs, without intersections, and without points of groups of
    1..threshold people."""
    from audits.engines.trends import series_changes

    entries = []
    for entry in series["series"]:
        if "&" in entry["attribute"]:
            continue
        points = [p for p in entry["points"] if p["run"] in runs]
        shown = [p for p in points if not (p["n"] is not None and 1 <= p["n"] <= threshold)]
        if not shown:
            continue
        entries.append(
            {
                **entry,
                "points": [
                    {**p, **{k: p[k].isoformat() for k in ("at", "window_start", "window_end") if p[k] is not None}}
                    for p in shown
                ],
                "suppressed_points": len(points) - len(shown),
                "changes": series_changes(series["metric"], shown),
            }
        )
    return {**series, "series": entries}


def monitoring_report_data(*, ai_model: AIModel, start: date, end: date) -> dict[str, Any]:
    """Everything a monitoring report of [start, end) cites, copied so that it never changes later.

    1. The production audits whose window ends (or which finished) in the period, each summarised.
    2. The trend of the followed metrics per group, points of small groups left out, with the change
       between consecutive windows.
    3. The alerts opened in the period or still open at its end, the review status of the period's
       findings, and the lifecycle events of the model's versions in the period.
    """
    since, until = _midnight(start), _midnight(end)
    threshold = settings.REPORT_SMALL_CELL_THRESHOLD
    runs = (
        AuditRun.objects.filter(model_version__ai_model=ai_model, status=AuditRun.Status.SUCCEEDED)
        .filter(dataset__kind=Dataset.Kind.PRODUCTION)
        .annotate(at=Coalesce("window_end", "finished_at"))
        .filter(at__gte=since, at__lt=until)
        .select_related("model_version", "dataset")
        .order_by("at", "pk")
    )
    summaries = []
    for run in runs:
        result = run.result or {}
        findings = result.get("findings", [])
        quality = result.get("quality") or {}
        drift = result.get("drift") or {}
        rows = result.get("rows")
        summaries.append(
            {
                "run": run.pk,
                "version": run.model_version.version,
                "at": run.at.isoformat(),
                "window": [run.window_start.isoformat(), run.window_end.isoformat()]
                if run.window_start and run.window_end
                else None,
                # The row count of a small window is itself a small cell.
                "rows": None if rows is not None and 1 <= rows <= threshold else rows,
                "verdict": run.verdict,
                "critical": sum(1 for f in findings if f["severity"] == "critical"),
                "warning": sum(1 for f in findings if f["severity"] == "warning"),
                "share_drifted": drift.get("share_drifted"),
                "dataset_drift": drift.get("dataset_drift"),
                "duplicate_share": quality.get("duplicate_share") if rows and rows > threshold else None,
                "max_missing_share": max((c["missing_share"] for c in quality.get("columns", [])), default=None),
            }
        )
    # Pre-deployment audits of evaluation data are not production: only the runs listed above are followed.
    production = {summary["run"] for summary in summaries}
    trends = {
        metric: _published(metric_series(ai_model=ai_model, metric=metric, since=since), production, threshold)
        for metric in TREND_METRICS
    }
    alerts = Alert.objects.filter(ai_model=ai_model, opened_at__lt=until).exclude(resolved_at__lt=since)
    findings = Finding.objects.filter(run__in=[r.pk for r in runs])
    versions = ModelVersion.objects.filter(ai_model=ai_model)
    lifecycle = GovernanceEvent.objects.filter(
        object_type="governance.modelversion",
        object_id__in=[str(v.pk) for v in versions],
        created_at__gte=since,
        created_at__lt=until,
    ).select_related("actor")
    deployed = versions.filter(stage=ModelVersion.Stage.DEPLOYED).order_by("-stage_changed_at").first()
    return {
        "report_schema_version": 2,
        "kind": "monitoring",
        "generated_at": timezone.now().isoformat(),
        # A report on a period that has not ended yet says so: later audits of the period are not in it.
        "period": {"start": start.isoformat(), "end": end.isoformat(), "complete": until <= timezone.now()},
        "organization": {"name": ai_model.organization.name, "slug": ai_model.organization.slug},
        "model": {
            "name": ai_model.name,
            "slug": ai_model.slug,
            "intended_use": ai_model.intended_use,
            "target_population": ai_model.target_population,
            "decision_role": ai_model.decision_role,
            "clinical_risk_level": ai_model.clinical_risk_level,
        },
        "deployed_version": deployed.version if deployed else None,
        "runs": summaries,
        "trends": trends,
        "alerts": [
            {
                "kind": a.kind,
                "title": a.title,
                "opened_at": a.opened_at.isoformat(),
                "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
                "occurrences": a.occurrences,
                "resolution": a.resolution,
            }
            for a in alerts.order_by("opened_at")
        ],
        "findings_review": {
            severity: {
                status: findings.filter(severity=severity, review_status=status).count()
                for status in Finding.ReviewStatus.values
            }
            for severity in Finding.Severity.values
        },
        "lifecycle": [
            {
                "action": e.action,
                "at": e.created_at.isoformat(),
                "by": e.actor.get_username() if e.actor else None,
                "before": e.before,
                "after": e.after,
            }
            for e in lifecycle.order_by("created_at", "id")
        ],
        "suppression": {"threshold": threshold},
    }


@transaction.atomic
def monitoring_report_generate(
    *, ai_model: AIModel, start: date, end: date, actor: Any, first_version_only: bool = False
) -> Report:
    """Freeze a monitoring report of a model for [start, end) as a new version, with the sha256 of its content.

    With first_version_only (the monthly sweep), the report is version 1 or nothing: the unique constraint
    then refuses a second one with an IntegrityError, however the sweeps interleave.
    """
    from reports.charts import trend_charts

    require_role(actor, ai_model.organization, WRITE_ROLES, doing="Generating a monitoring report")
    if start >= end:
        raise ServiceError("the period's start must be before its end", field="start")
    data = monitoring_report_data(ai_model=ai_model, start=start, end=end)
    title = f"Monitoring of {ai_model.name}, {start.isoformat()} to {(end - timedelta(days=1)).isoformat()}"
    html = render_to_string(
        "reports/monitoring_report.html", {"title": title, "data": data, "charts": trend_charts(data)}
    )
    existing = Report.objects.filter(kind=Report.Kind.MONITORING, ai_model=ai_model, period_start=start, period_end=end)
    latest = 0 if first_version_only else existing.aggregate(v=Max("version"))["v"] or 0
    return report_freeze(
        organization=ai_model.organization,
        actor=actor,
        version=latest + 1,
        title=title,
        html=html,
        data=data,
        cites={"kind": Report.Kind.MONITORING, "ai_model": ai_model, "period_start": start, "period_end": end},
    )


def previous_month(today: date) -> tuple[date, date]:
    """The calendar month before the one of `today`: [its first day, the first day of this month)."""
    first = today.replace(day=1)
    last_month_end = first - timedelta(days=1)
    return last_month_end.replace(day=1), first


def monthly_reports_generate(*, today: date | None = None) -> int:
    """Make last month's monitoring report of every deployed model that has none yet (beat, monthly).

    The partial unique constraint on (model, period, version) keeps two racing sweeps to one report.
    """
    start, end = previous_month(today or timezone.now().date())
    made = 0
    deployed = AIModel.objects.filter(versions__stage=ModelVersion.Stage.DEPLOYED).distinct()
    for ai_model in deployed:
        exists = Report.objects.filter(
            kind=Report.Kind.MONITORING, ai_model=ai_model, period_start=start, period_end=end
        ).exists()
        if exists:
            continue
        try:
            monitoring_report_generate(ai_model=ai_model, start=start, end=end, actor=MONTHLY, first_version_only=True)
        except IntegrityError:
            logger.info("monthly report of %s for %s: made by another sweep", ai_model.pk, start)
            continue
        made += 1
    logger.info(
        "monthly reports for %s: %s made (%s days)", start, made, calendar.monthrange(start.year, start.month)[1]
    )
    return made
