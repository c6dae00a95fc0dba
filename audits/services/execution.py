"""Carrying out a claimed run: read its data, run the engines, store the results once, announce them."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from audits.engines.errors import TableError
from audits.models import AuditRun, Finding, MetricResult
from audits.services.errors import AuditInputError
from audits.services.lifecycle import audit_run_claim, audit_run_renew_lease
from audits.services.results import finding_rows, metric_rows
from governance.services import event_record

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def audit_run_execute(*, run_id: int, worker: str) -> None:
    """Claim a run and carry it out to succeeded or failed.

    1. Claim it; if another worker has it, return.
    2. Read the needed columns of its datasets and run the engines, renewing the lease between phases.
    3. Store the results in one transaction, only if this attempt still holds the run.
    4. A failure the user can act on is stored as a readable error; anything else as an internal error,
       except the database going away: the run is then left to its lease and the sweeper, and runs again.
    """
    attempt = audit_run_claim(run_id=run_id, worker=worker)
    if attempt is None:
        logger.info("audit run %s: not claimed (taken or finished)", run_id)
        return
    run = AuditRun.objects.select_related("dataset", "reference_dataset", "model_version__ai_model").get(pk=run_id)
    logger.info("audit run %s: claimed by %s, attempt %s", run_id, worker, attempt)
    partitioned = run.dataset.is_partitioned or (run.reference_dataset and run.reference_dataset.is_partitioned)
    if partitioned and settings.AUDIT_FAN_OUT:
        from audits.services.partitions import audit_run_fan_out

        audit_run_fan_out(run, attempt)
        return

    last_step, last_at = [""], [0.0]

    def progress(step: str, rows: int) -> None:
        # A new step is written at once; rows read within a step at most once a second.
        now = time.monotonic()
        if step == last_step[0] and now - last_at[0] < 1.0:
            return
        last_step[0], last_at[0] = step, now
        if not audit_run_renew_lease(run_id=run_id, attempt=attempt, progress=step, rows_read=rows):
            raise AuditInputError("the run was taken over by another worker after its lease lapsed")

    try:
        from audits.engines.findings import restrict_to_checks

        result, snapshot = _compute(run, progress)
        result = restrict_to_checks(result, run.checks)
        report_html = snapshot.get_html_str(as_iframe=False) if snapshot is not None else None
    except (OperationalError, InterfaceError):
        # The database went away (a restart, a failover): not the audit's fault, and nothing can be
        # written now. The run keeps its lease until it lapses; the sweeper then queues it again.
        logger.warning("audit run %s: database unavailable mid-run; left for the sweeper to retry", run_id)
        raise
    except Exception as exc:
        audit_run_fail(run, attempt, _readable_error(exc))
        if not isinstance(exc, AuditInputError):
            logger.error("audit run %s failed with %s", run_id, type(exc).__name__)
        return
    finish_succeeded(run, attempt, result, report_html)


def _readable_error(exc: Exception) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, AuditInputError | TableError):
        return str(exc)
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"the audit took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} s and was stopped"
    if isinstance(exc, MemoryError):
        return "the audit ran out of memory; lower AUDIT_EVIDENTLY_REPORT_ROWS or give the worker more memory"
    return f"internal error ({type(exc).__name__}): {exc}"


def _compute(run: AuditRun, progress: Any) -> tuple[dict[str, Any], Any]:
    """One pass over every partition of the run's data, in row order, on this worker."""
    from audits.engines.audit import data_statistics, reference_statistics
    from audits.engines.quality import reference_ranges
    from audits.services.reading import (
        audit_plan,
        chunks_of,
        dataset_partitions,
        evidently_sample,
        open_partitions,
        reference_columns,
        run_report,
    )

    progress("opening the data", 0)
    with ExitStack() as files:
        data_partitions = dataset_partitions(run.dataset)
        data_files = open_partitions(files, data_partitions)
        reference_partitions = dataset_partitions(run.reference_dataset) if run.reference_dataset else []
        reference_files = open_partitions(files, reference_partitions, "reference")
        plan = audit_plan(run, data_files, reference_files)
        reference = sample = None
        if run.reference_dataset is not None:
            columns = reference_columns(run, plan.roles)
            reference = reference_statistics(chunks_of(reference_files, columns), plan, on_progress=progress)
            sample = evidently_sample(run, plan, (data_files, data_partitions), (reference_files, reference_partitions))
        data = data_statistics(
            chunks_of(data_files, plan.roles.all_columns()),
            plan,
            ranges=reference_ranges(reference.quality) if reference is not None else None,
            drift=reference is not None,
            on_progress=progress,
        )
        return run_report(run, plan, data, reference, sample, on_progress=progress)


def finish_succeeded(
    run: AuditRun, attempt: int, result: dict[str, Any], report_html: str | None, *, report_name: str = ""
) -> None:
    """Store a run's results in one transaction, if `attempt` still holds it; record, announce and alert.

    Evidently's report comes as HTML to store, or already stored (`report_name`, by a partitioned run's task).
    """
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
        _monitor(locked, result)
        transaction.on_commit(lambda: _discard_intermediates(run.pk))
    logger.info("audit run %s: succeeded", run.pk)


def audit_run_fail(run: AuditRun, attempt: int, error: str) -> None:
    """Mark the run failed with a readable error, if `attempt` still holds it; record, announce and alert."""
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
            _monitor(run, None)
            transaction.on_commit(lambda: _discard_intermediates(run.pk))

    logger.info("audit run %s: failed", run.pk)


def _discard_intermediates(run_id: int) -> None:
    from audits.services.partitions import run_statistics_discard

    run_statistics_discard(run_id)


def _monitor(run: AuditRun, result: dict[str, Any] | None) -> None:
    """Alerts the run opens or resolves, and its schedule's overdue state."""
    from audits.services.alerts import alerts_for_finished_run
    from audits.services.schedules import schedule_run_finished

    alerts_for_finished_run(run, result)
    schedule_run_finished(run)


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
