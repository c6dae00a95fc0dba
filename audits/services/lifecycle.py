"""Audit runs from creation to claim: queued, dispatched by id, claimed once, leased; and the sweep that
makes sure none is lost."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from audits.models import AuditRun, AuditSchedule
from governance.models import WRITE_ROLES, Dataset, ModelVersion
from governance.services import ServiceError, event_record, require_role

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


@transaction.atomic
def audit_run_create(
    *,
    model_version: ModelVersion,
    dataset: Dataset,
    reference_dataset: Dataset | None,
    actor: Any,
    schedule: AuditSchedule | None = None,
    window: tuple[datetime, datetime] | None = None,
    checks: list[str] | None = None,
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
    unknown = set(checks or []) - set(AuditSchedule.Check.values)
    if unknown:
        raise ServiceError(f"unknown checks: {', '.join(sorted(unknown))}", field="checks")
    run = AuditRun.objects.create(
        organization=organization,
        model_version=model_version,
        dataset=dataset,
        reference_dataset=reference_dataset,
        created_by=actor if getattr(actor, "pk", None) else None,
        schedule=schedule,
        window_start=window[0] if window else None,
        window_end=window[1] if window else None,
        checks=sorted(checks or []),
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
            "schedule": schedule.pk if schedule else None,
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
        rows_read=0,
        plan=None,
    )
    if claimed != 1:
        return None
    return AuditRun.objects.values_list("attempt", flat=True).get(pk=run_id)


def audit_run_renew_lease(*, run_id: int, attempt: int, progress: str, rows_read: int = 0) -> bool:
    """Extend the lease of a run this worker holds, noting how far it got; False if it no longer holds it."""
    return (
        AuditRun.objects.filter(pk=run_id, status=AuditRun.Status.RUNNING, attempt=attempt).update(
            lease_expires_at=timezone.now() + timedelta(seconds=settings.AUDIT_RUN_LEASE_SECONDS),
            progress=progress[:200],
            rows_read=rows_read,
        )
        == 1
    )


def audit_runs_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Hand back runs whose lease lapsed and re-dispatch queued runs whose dispatch may be lost.

    1. A running run past its lease goes back to queued (conditional UPDATE, so two sweeps agree), unless
       it has been interrupted AUDIT_RUN_MAX_ATTEMPTS times: it then fails, saying so, rather than loop.
    2. A queued run not dispatched within AUDIT_RUN_REDISPATCH_AFTER_SECONDS is dispatched again.
    """
    from audits.services.execution import audit_run_fail
    from audits.services.partitions import run_tasks_sweep

    now = now or timezone.now()
    requeued = 0
    # A run fanned out over partitions has no lease of its own: its tasks do (run_tasks_sweep).
    lapsed = AuditRun.objects.filter(status=AuditRun.Status.RUNNING, lease_expires_at__lt=now, plan__isnull=True)
    given_up = 0
    for run in lapsed.filter(attempt__gte=settings.AUDIT_RUN_MAX_ATTEMPTS):
        given_up += 1
        message = (
            f"the run was interrupted {run.attempt} times (its worker was lost or the database was unavailable); "
            "start it again once the service is healthy"
        )
        audit_run_fail(run, run.attempt, message)
    for run_id in lapsed.values_list("pk", flat=True):
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
    return {"requeued": requeued, "redispatched": redispatched, "given_up": given_up, **run_tasks_sweep(now=now)}
