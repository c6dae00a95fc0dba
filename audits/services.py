"""Audit runs: creation, dispatch, claim, execution and the sweep that makes sure none is lost."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audits.engines.errors import TableError
from audits.models import AuditPolicy, AuditRun, Finding, MetricResult
from governance.models import WRITE_ROLES, AIModel, Dataset, ModelVersion, Role
from governance.services import ServiceError, event_record, require_role

if TYPE_CHECKING:
    from audits.engines.policy import Policy

logger = logging.getLogger(__name__)


class AuditInputError(Exception):
    """The run's data cannot be audited as asked; the message says why, for the user."""


@transaction.atomic
def audit_run_create(
    *, model_version: ModelVersion, dataset: Dataset, reference_dataset: Dataset | None, actor: Any
) -> AuditRun:
    """Queue an audit of a model version on a dataset, optionally against a reference dataset.

    1. Check that everything belongs to one organization and the actor may start audits.
    2. Create the run in status queued and record the event.
    3. Dispatch the task by run id once the transaction commits.
    """
    organization = model_version.ai_model.organization
    require_role(actor, organization, WRITE_ROLES, doing="Starting an audit")
    for role, item in (("dataset", dataset), ("reference_dataset", reference_dataset)):
        if item is not None and item.organization_id != organization.pk:
            raise ServiceError(f"the {role} belongs to another organization", field=role)
    if reference_dataset is not None and reference_dataset.pk == dataset.pk:
        raise ServiceError("the reference dataset must differ from the audited dataset", field="reference_dataset")
    run = AuditRun.objects.create(
        organization=organization,
        model_version=model_version,
        dataset=dataset,
        reference_dataset=reference_dataset,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    event_record(
        organization=organization,
        actor=actor,
        action="audit_run.queued",
        obj=run,
        after={
            "model_version": model_version.pk,
            "dataset": dataset.pk,
            "reference_dataset": reference_dataset.pk if reference_dataset else None,
        },
    )
    transaction.on_commit(lambda: audit_run_dispatch(run_id=run.pk))
    return run


def audit_run_dispatch(*, run_id: int) -> None:
    """Send the run to the workers; safe to repeat, because only one worker can claim it."""
    from kombu.exceptions import OperationalError

    from audits.tasks import run_audit

    AuditRun.objects.filter(pk=run_id, status=AuditRun.Status.QUEUED).update(dispatched_at=timezone.now())
    try:
        run_audit.delay(run_id)
    except OperationalError:
        # The run stays queued in the database; the sweeper sends it again once the broker is back.
        logger.warning("audit run %s: broker unavailable, left for the sweeper", run_id)


def audit_run_claim(*, run_id: int, worker: str) -> int | None:
    """Take a queued run for this worker with a conditional UPDATE; the attempt number, or None if lost."""
    now = timezone.now()
    claimed = AuditRun.objects.filter(pk=run_id, status=AuditRun.Status.QUEUED).update(
        status=AuditRun.Status.RUNNING,
        started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.AUDIT_RUN_LEASE_SECONDS),
        attempt=F("attempt") + 1,
        worker=worker[:200],
        progress="claimed",
    )
    if claimed != 1:
        return None
    return AuditRun.objects.values_list("attempt", flat=True).get(pk=run_id)


def audit_run_renew_lease(*, run_id: int, attempt: int, progress: str) -> bool:
    """Extend the lease of a run this worker holds; False if it no longer holds it."""
    return (
        AuditRun.objects.filter(pk=run_id, status=AuditRun.Status.RUNNING, attempt=attempt).update(
            lease_expires_at=timezone.now() + timedelta(seconds=settings.AUDIT_RUN_LEASE_SECONDS),
            progress=progress[:200],
        )
        == 1
    )


def audit_run_execute(*, run_id: int, worker: str) -> None:
    """Claim a run and carry it out to succeeded or failed.

    1. Claim it; if another worker has it, return.
    2. Read the needed columns of its datasets and run the engines, renewing the lease between phases.
    3. Store the results in one transaction, only if this attempt still holds the run.
    4. A failure the user can act on is stored as a readable error; anything else as an internal error.
    """
    attempt = audit_run_claim(run_id=run_id, worker=worker)
    if attempt is None:
        logger.info("audit run %s: not claimed (taken or finished)", run_id)
        return
    run = AuditRun.objects.select_related("dataset", "reference_dataset", "model_version__ai_model").get(pk=run_id)
    logger.info("audit run %s: claimed by %s, attempt %s", run_id, worker, attempt)

    def progress(step: str) -> None:
        if not audit_run_renew_lease(run_id=run_id, attempt=attempt, progress=step):
            raise AuditInputError("the run was taken over by another worker after its lease lapsed")

    try:
        result, snapshot = _compute(run, progress)
        report_html = snapshot.get_html_str(as_iframe=False) if snapshot is not None else None
    except Exception as exc:
        _finish_failed(run, attempt, _readable_error(exc))
        if not isinstance(exc, AuditInputError):
            logger.error("audit run %s failed with %s", run_id, type(exc).__name__)
        return
    _finish_succeeded(run, attempt, result, report_html)


def _readable_error(exc: Exception) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, AuditInputError | TableError):
        return str(exc)
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"the audit took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} s and was stopped"
    if isinstance(exc, MemoryError):
        return "the audit ran out of memory; lower AUDIT_EVIDENTLY_REPORT_ROWS or give the worker more memory"
    return f"internal error ({type(exc).__name__}): {exc}"


def audit_policy_for(run: AuditRun) -> Policy:
    """The policy the run's model is held to: its own, else the defaults."""
    from audits.engines.policy import Policy

    stored = AuditPolicy.objects.filter(ai_model_id=run.model_version.ai_model_id).first()
    return Policy.from_dict(stored.as_dict()) if stored else Policy()


def _compute(run: AuditRun, progress: Any) -> tuple[dict[str, Any], Any]:
    from audits.engines.audit import audit_chunks, drift_column_types
    from audits.engines.tables import (
        ColumnRoles,
        iter_parquet_chunks,
        numeric_ranges,
        parquet_min_max,
        read_parquet_sample,
        score_is_probability,
    )

    roles = ColumnRoles.from_dict(run.dataset.column_roles)
    policy = audit_policy_for(run)
    is_probability = True
    if roles.score:
        with run.dataset.file.open("rb") as data_file:
            is_probability = score_is_probability(*parquet_min_max(data_file, roles.score))
    progress("reading data")
    with ExitStack() as files:
        data_file = files.enter_context(run.dataset.file.open("rb"))
        reference_chunks = reference_schema = ranges = evidently_sample = None
        if run.reference_dataset is not None:
            reference_file = files.enter_context(run.reference_dataset.file.open("rb"))
            reference_schema = run.reference_dataset.columns
            numerical, categorical = drift_column_types(roles, run.dataset.columns, reference_schema)
            if not numerical and not categorical:
                raise AuditInputError("the reference dataset shares none of the audited dataset's feature columns")
            ranges = numeric_ranges([data_file, reference_file], numerical)
            shared = [c for c in roles.all_columns() if c in {c["name"] for c in reference_schema}]
            reference_chunks = iter_parquet_chunks(reference_file, columns=shared)
            limit = settings.AUDIT_EVIDENTLY_REPORT_ROWS
            evidently_sample = (
                read_parquet_sample(reference_file, columns=numerical + categorical, max_rows=limit, seed=run.pk)[0],
                read_parquet_sample(data_file, columns=numerical + categorical, max_rows=limit, seed=run.pk)[0],
            )
        return audit_chunks(
            iter_parquet_chunks(data_file, columns=roles.all_columns()),
            roles=roles,
            policy=policy,
            score_is_probability=is_probability,
            reference_chunks=reference_chunks,
            schema=run.dataset.columns,
            reference_schema=reference_schema,
            numeric_ranges=ranges,
            identifiers=run.dataset.identifier_scan,
            evidently_sample=evidently_sample,
            on_progress=progress,
        )


def _finish_succeeded(run: AuditRun, attempt: int, result: dict[str, Any], report_html: str | None) -> None:
    report_name = ""
    if report_html is not None:
        report_name = default_storage.save(
            f"runs/{run.organization_id}/{run.pk}/attempt-{attempt}-drift-report.html",
            ContentFile(report_html.encode("utf-8")),
        )
    with transaction.atomic():
        locked = AuditRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != AuditRun.Status.RUNNING or locked.attempt != attempt:
            logger.warning("audit run %s: attempt %s lost its claim; its results are discarded", run.pk, attempt)
            if report_name:
                default_storage.delete(report_name)
            return
        MetricResult.objects.bulk_create(metric_rows(locked, result))
        Finding.objects.bulk_create(finding_rows(locked, result))
        locked.verdict = result["verdict"]
        locked.status = AuditRun.Status.SUCCEEDED
        locked.finished_at = timezone.now()
        locked.result = result
        locked.progress = "finished"
        locked.lease_expires_at = None
        locked.drift_report_file = report_name
        locked.save(
            update_fields=[
                "status",
                "finished_at",
                "result",
                "progress",
                "lease_expires_at",
                "drift_report_file",
                "verdict",
            ]
        )
        event_record(
            organization=locked.organization,
            actor=None,
            action="audit_run.succeeded",
            obj=locked,
            after={"rows": result["rows"], "attempt": attempt},
        )
        _announce(locked, result)
    logger.info("audit run %s: succeeded", run.pk)


def _finish_failed(run: AuditRun, attempt: int, error: str) -> None:
    with transaction.atomic():
        changed = AuditRun.objects.filter(pk=run.pk, status=AuditRun.Status.RUNNING, attempt=attempt).update(
            status=AuditRun.Status.FAILED,
            finished_at=timezone.now(),
            error=error,
            progress="failed",
            lease_expires_at=None,
        )
        if changed:
            event_record(
                organization=run.organization,
                actor=None,
                action="audit_run.failed",
                obj=run,
                after={"error": error, "attempt": attempt},
            )
            run.refresh_from_db()
            _announce(run, None)

    logger.info("audit run %s: failed", run.pk)


def _announce(run: AuditRun, result: dict[str, Any] | None) -> None:
    """Webhooks: the run finished, and its critical findings. Ids and figures only, no patient data."""
    from governance.webhooks import webhook_event_emit

    findings = (result or {}).get("findings", [])
    payload = {
        "run": run.pk,
        "model": run.model_version.ai_model.slug,
        "model_version": run.model_version.version,
        "status": run.status,
        "verdict": run.verdict or None,
        "findings": {s: sum(1 for f in findings if f["severity"] == s) for s in ("critical", "warning", "info")},
        "error": run.error or None,
    }
    webhook_event_emit(organization=run.organization, event="run.finished", payload=payload)
    critical = [f for f in findings if f["severity"] == "critical"]
    if critical:
        webhook_event_emit(
            organization=run.organization,
            event="finding.critical",
            payload={
                **payload,
                "critical": [
                    {k: f[k] for k in ("metric", "attribute", "group", "column", "value", "message")} for f in critical
                ],
            },
        )


def metric_rows(run: AuditRun, result: dict[str, Any]) -> list[MetricResult]:
    """The result document as one MetricResult row per number."""
    from audits.engines.fairness import GROUP_RATES, SCORE_METRICS

    rows: list[MetricResult] = []
    fairness = result["fairness"]
    for group in fairness["groups"]:
        for metric in (*GROUP_RATES, *SCORE_METRICS):
            if metric in SCORE_METRICS and group.get(metric) is None:
                continue
            interval = group["ci"].get(metric)
            rows.append(
                MetricResult(
                    run=run,
                    category=MetricResult.Category.FAIRNESS,
                    metric=metric,
                    attribute=group["attribute"],
                    group=group["group"],
                    value=group[metric],
                    ci_low=interval[0] if interval else None,
                    ci_high=interval[1] if interval else None,
                    n=group["n"],
                    details={"is_reference": group["is_reference"]},
                )
            )
    for disparity in fairness["disparities"]:
        interval = disparity["ci"]
        rows.append(
            MetricResult(
                run=run,
                category=MetricResult.Category.FAIRNESS,
                metric=disparity["metric"],
                attribute=disparity["attribute"],
                group=disparity["group"],
                reference_group=disparity["reference"],
                value=disparity["value"],
                ci_low=interval[0] if interval else None,
                ci_high=interval[1] if interval else None,
                p_value=disparity["p_value"],
                status=disparity["status"],
                n=disparity["n"],
                details={
                    "reference_n": disparity["reference_n"],
                    "p_value_unadjusted": disparity["p_value_unadjusted"],
                },
            )
        )
    drift = result.get("drift")
    if drift:
        for column in drift["columns"]:
            rows.append(
                MetricResult(
                    run=run,
                    category=MetricResult.Category.DRIFT,
                    metric="drift_score",
                    column=column["column"],
                    value=column["score"],
                    details={k: column[k] for k in ("stattest", "threshold", "drifted", "column_type")},
                )
            )
        rows.append(
            MetricResult(
                run=run,
                category=MetricResult.Category.DRIFT,
                metric="share_drifted_columns",
                value=drift["share_drifted"],
                n=len(drift["columns"]),
                details={"dataset_drift": drift["dataset_drift"], "threshold": drift["drift_share_threshold"]},
            )
        )
    quality = result["quality"]
    for column in quality["columns"]:
        rows.append(
            MetricResult(
                run=run,
                category=MetricResult.Category.QUALITY,
                metric="missing_share",
                column=column["column"],
                value=column["missing_share"],
                n=column["missing"],
            )
        )
    rows.append(
        MetricResult(
            run=run,
            category=MetricResult.Category.QUALITY,
            metric="duplicate_share",
            value=quality["duplicate_share"],
            n=quality["duplicate_rows"],
        )
    )
    return rows


def finding_rows(run: AuditRun, result: dict[str, Any]) -> list[Finding]:
    """The result's findings as Finding rows, open for review."""
    rows = []
    for finding in result.get("findings", []):
        interval, threshold = finding["ci"] or [None, None], finding["threshold"] or [None, None]
        rows.append(
            Finding(
                run=run,
                severity=finding["severity"],
                category=finding["category"],
                metric=finding["metric"],
                attribute=finding["attribute"],
                group=finding["group"],
                reference_group=finding["reference"],
                column=finding["column"],
                value=finding["value"],
                ci_low=interval[0],
                ci_high=interval[1],
                threshold_low=threshold[0],
                threshold_high=threshold[1],
                message=finding["message"],
            )
        )
    return rows


@transaction.atomic
def audit_policy_update(*, ai_model: AIModel, actor: Any, **fields: Any) -> AuditPolicy:
    """Set a model's audit policy (created on first use), checked by the engine's rules, and record the change."""
    from audits.engines.policy import Policy

    require_role(
        actor, ai_model.organization, {Role.MODEL_OWNER, Role.APPROVER, Role.ADMIN}, doing="Changing an audit policy"
    )
    policy, _ = AuditPolicy.objects.select_for_update().get_or_create(ai_model=ai_model)
    before = policy.as_dict()
    for name, value in fields.items():
        if name not in before:
            raise ServiceError(f"unknown policy field {name!r}", field=name)
        setattr(policy, name, value)
    try:
        Policy.from_dict(policy.as_dict())
    except TableError as exc:
        raise ServiceError(str(exc)) from None
    policy.updated_by = actor if getattr(actor, "pk", None) else None
    policy.save()
    event_record(
        organization=ai_model.organization,
        actor=actor,
        action="audit_policy.changed",
        obj=policy,
        before=before,
        after=policy.as_dict(),
    )
    return policy


def audit_runs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Hand back runs whose lease lapsed and re-dispatch queued runs whose dispatch may be lost.

    1. A running run past its lease goes back to queued (conditional UPDATE, so two sweeps agree).
    2. A queued run not dispatched within AUDIT_RUN_REDISPATCH_AFTER_SECONDS is dispatched again.
    """
    now = now or timezone.now()
    requeued = 0
    for run_id in AuditRun.objects.filter(status=AuditRun.Status.RUNNING, lease_expires_at__lt=now).values_list(
        "pk", flat=True
    ):
        if AuditRun.objects.filter(pk=run_id, status=AuditRun.Status.RUNNING, lease_expires_at__lt=now).update(
            status=AuditRun.Status.QUEUED,
            lease_expires_at=None,
            progress="lease lapsed; queued again",
            dispatched_at=None,
        ):
            requeued += 1
            logger.warning("audit run %s: lease lapsed, queued again", run_id)
    stale = now - timedelta(seconds=settings.AUDIT_RUN_REDISPATCH_AFTER_SECONDS)
    redispatched = 0
    lost = Q(dispatched_at__lt=stale) | Q(dispatched_at__isnull=True, created_at__lt=stale)
    for run_id in AuditRun.objects.filter(lost, status=AuditRun.Status.QUEUED).values_list("pk", flat=True):
        # Only the sweep that moves dispatched_at forward sends the task.
        if AuditRun.objects.filter(lost, pk=run_id, status=AuditRun.Status.QUEUED).update(dispatched_at=now):
            audit_run_dispatch(run_id=run_id)
            redispatched += 1
    return {"requeued": requeued, "redispatched": redispatched}
