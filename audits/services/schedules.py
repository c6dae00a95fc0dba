"""Audit schedules: when each is due, firing each due time exactly once, and noticing when one falls behind."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celery.schedules import crontab
from django.db import transaction
from django.utils import timezone

from audits.engines.errors import TableError
from audits.models import Alert, AuditRun, AuditSchedule
from audits.services.alerts import alert_raise, alerts_resolve_key
from audits.services.lifecycle import audit_run_create
from audits.services.stream import production_window_snapshot
from governance.models import OWNER_ROLES, AIModel, Dataset, ModelVersion
from governance.services import ServiceError, SystemActor, event_record, require_role

logger = logging.getLogger(__name__)

SCHEDULER = SystemActor("audit schedule")
SCHEDULE_FIELDS = (
    "name",
    "model_version",
    "cron",
    "interval_minutes",
    "timezone",
    "checks",
    "window_days",
    "reference_dataset",
    "grace_minutes",
    "enabled",
)


class _ZonedCrontab(crontab):
    """Celery's crontab read in the schedule's own time zone rather than the app's."""

    def __init__(self, *args: Any, zone: ZoneInfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._zone = zone

    @property
    def tz(self) -> ZoneInfo:
        return self._zone


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ServiceError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Paris", field="timezone"
        ) from None


def _crontab(expression: str, zone: ZoneInfo) -> crontab:
    fields = expression.split()
    if len(fields) != 5:
        raise ServiceError(
            f"cron expression {expression!r} needs five fields: minute hour day-of-month month day-of-week",
            field="cron",
        )
    try:
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        # By keyword: celery's positional order is not cron's.
        return _ZonedCrontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            zone=zone,
        )
    except (ValueError, KeyError) as exc:
        raise ServiceError(f"cron expression {expression!r}: {exc}", field="cron") from None


def schedule_next_due(schedule: AuditSchedule, *, after: datetime) -> datetime:
    """The first due time of the schedule strictly after `after` (missed due times are not replayed)."""
    if schedule.cron:
        cron = _crontab(schedule.cron, _zone(schedule.timezone))
        start, delta, _ = cron.remaining_delta(after)
        return (start + delta).astimezone(ZoneInfo("UTC"))
    if not schedule.interval_minutes:
        raise ServiceError("a schedule needs a cron expression or an interval", field="cron")
    step = timedelta(minutes=schedule.interval_minutes)
    anchor = schedule.next_run_at or after
    if anchor > after:
        return anchor
    return anchor + step * ((after - anchor) // step + 1)


def audit_schedule_validate(schedule: AuditSchedule) -> None:
    """Refuse a schedule whose cadence, time zone, checks, window or targets are wrong, naming the field."""
    if bool(schedule.cron) == bool(schedule.interval_minutes):
        raise ServiceError("give either a cron expression or an interval in minutes, not both", field="cron")
    if schedule.cron:
        _crontab(schedule.cron, _zone(schedule.timezone))
    _zone(schedule.timezone)
    unknown = set(schedule.checks or []) - set(AuditSchedule.Check.values)
    if unknown or not isinstance(schedule.checks, list):
        raise ServiceError(f"checks are chosen from {', '.join(AuditSchedule.Check.values)}", field="checks")
    if not 1 <= schedule.window_days <= 3660:
        raise ServiceError("window_days must be between 1 and 3660", field="window_days")
    for field, item in (("model_version", schedule.model_version), ("reference_dataset", schedule.reference_dataset)):
        owner = getattr(item, "ai_model_id", None)
        if item is not None and owner != schedule.ai_model_id:
            raise ServiceError(f"the {field} belongs to another model", field=field)


def _snapshot(schedule: AuditSchedule) -> dict[str, Any]:
    return {
        f: getattr(schedule, f"{f}_id") if f in ("model_version", "reference_dataset") else getattr(schedule, f)
        for f in SCHEDULE_FIELDS
    }


@transaction.atomic
def audit_schedule_create(*, ai_model: AIModel, actor: Any, start_now: bool = False, **fields: Any) -> AuditSchedule:
    """Schedule audits of a model's production stream; first due now (start_now) or at the next due time."""
    require_role(actor, ai_model.organization, OWNER_ROLES, doing="Scheduling audits")
    unknown = set(fields) - set(SCHEDULE_FIELDS)
    if unknown:
        raise ServiceError(f"unknown schedule fields: {', '.join(sorted(unknown))}")
    schedule = AuditSchedule(
        organization_id=ai_model.organization_id,
        ai_model=ai_model,
        created_by=actor if getattr(actor, "pk", None) else None,
        **fields,
    )
    audit_schedule_validate(schedule)
    now = timezone.now()
    schedule.next_run_at = (now if start_now else schedule_next_due(schedule, after=now)) if schedule.enabled else None
    schedule.save()
    event_record(
        organization=ai_model.organization,
        actor=actor,
        action="audit_schedule.created",
        obj=schedule,
        after=_snapshot(schedule),
    )
    return schedule


@transaction.atomic
def audit_schedule_update(*, schedule: AuditSchedule, actor: Any, **fields: Any) -> AuditSchedule:
    """Change a schedule; a new cadence or re-enabling computes the next due time afresh."""
    require_role(
        actor,
        schedule.ai_model.organization,
        OWNER_ROLES,
        doing="Changing a schedule",
    )
    schedule = AuditSchedule.objects.select_for_update().get(pk=schedule.pk)
    before = _snapshot(schedule)
    for name, value in fields.items():
        if name not in SCHEDULE_FIELDS:
            raise ServiceError(f"unknown schedule field {name!r}", field=name)
        setattr(schedule, name, value)
    audit_schedule_validate(schedule)
    after = _snapshot(schedule)
    cadence = ("cron", "interval_minutes", "timezone", "enabled")
    if any(before[f] != after[f] for f in cadence):
        schedule.next_run_at = None
        schedule.next_run_at = schedule_next_due(schedule, after=timezone.now()) if schedule.enabled else None
        if not schedule.enabled:
            schedule.overdue_since = None
    schedule.save()
    event_record(
        organization=schedule.ai_model.organization,
        actor=actor,
        action="audit_schedule.changed",
        obj=schedule,
        before=before,
        after=after,
    )
    return schedule


def deployed_version(ai_model: AIModel) -> ModelVersion | None:
    """The model's deployed version: the latest to enter that stage."""
    return (
        ModelVersion.objects.filter(ai_model=ai_model, stage=ModelVersion.Stage.DEPLOYED)
        .order_by("-stage_changed_at", "-pk")
        .first()
    )


def audit_schedules_fire(*, now: datetime | None = None) -> dict[str, int]:
    """Fire every due schedule once: claim its due time, cut the window, queue the run.

    1. Claim with a conditional UPDATE that moves next_run_at on from the due time read; a racing
       sweep's UPDATE waits on the row lock and then matches nothing, so each due time fires once.
    2. In the same transaction, freeze the window of the production stream and queue the audit. If
       that fails unexpectedly, the transaction (claim included) rolls back and the next sweep tries again;
       a window that cannot be audited (no data, no deployed version) is recorded as skipped.
    """
    now = now or timezone.now()
    fired = skipped = 0
    due = AuditSchedule.objects.filter(enabled=True, next_run_at__lte=now).select_related("ai_model")
    for schedule in due:
        due_at = schedule.next_run_at
        assert due_at is not None
        try:
            with transaction.atomic():
                claimed = AuditSchedule.objects.filter(pk=schedule.pk, enabled=True, next_run_at=due_at).update(
                    next_run_at=schedule_next_due(schedule, after=now), last_fired_at=now, last_due_at=due_at
                )
                if claimed != 1:
                    continue
                run, outcome = _fire(schedule, due_at=due_at)
                AuditSchedule.objects.filter(pk=schedule.pk).update(
                    last_outcome=outcome[:500], **({"last_run": run} if run else {})
                )
        except ServiceError as exc:
            logger.warning("schedule %s: not fired: %s", schedule.pk, exc)
            continue
        except Exception:
            # The claim rolled back with the rest: the next sweep tries this due time again, and the
            # overdue check alerts if it keeps failing. One schedule's fault must not stop the others.
            logger.exception("schedule %s: firing due time %s failed", schedule.pk, due_at.isoformat())
            continue
        if run is None:
            skipped += 1
            logger.info("schedule %s: due %s skipped", schedule.pk, due_at.isoformat())
        else:
            fired += 1
            logger.info("schedule %s: due %s fired run %s", schedule.pk, due_at.isoformat(), run.pk)
    return {"fired": fired, "skipped": skipped}


def _fire(schedule: AuditSchedule, *, due_at: datetime) -> tuple[AuditRun | None, str]:
    version = schedule.model_version or deployed_version(schedule.ai_model)
    if version is None:
        return None, "skipped: the model has no deployed version and the schedule names none"
    checks = schedule.checks or list(AuditSchedule.Check.values)
    reference = None
    note = ""
    if AuditSchedule.Check.DRIFT in checks:
        reference = schedule.reference_dataset or (
            Dataset.objects.filter(ai_model=schedule.ai_model, kind=Dataset.Kind.REFERENCE)
            .order_by("-created_at")
            .first()
        )
        if reference is None:
            note = "; drift not audited: the model has no reference dataset"
    window = (due_at - timedelta(days=schedule.window_days), due_at)
    try:
        # A savepoint: a window that cannot be audited undoes only its own writes, not the claim.
        with transaction.atomic():
            dataset = production_window_snapshot(model_version=version, start=window[0], end=window[1], actor=SCHEDULER)
            run = audit_run_create(
                model_version=version,
                dataset=dataset,
                reference_dataset=reference,
                actor=SCHEDULER,
                schedule=schedule,
                window=window,
                checks=schedule.checks,
            )
    except (ServiceError, TableError) as exc:
        return None, f"skipped: {exc}"
    return run, f"run {run.pk} queued for {window[0]:%Y-%m-%d %H:%M} to {window[1]:%Y-%m-%d %H:%M} UTC{note}"


def _pending_due(schedule: AuditSchedule, now: datetime) -> datetime | None:
    """The earliest due time of the schedule that has no finished run yet, if any."""
    pending = []
    if schedule.last_due_at is not None:
        run = schedule.last_run
        answered = run is not None and run.window_end == schedule.last_due_at and run.is_finished
        if not answered:
            pending.append(schedule.last_due_at)
    if schedule.next_run_at is not None and schedule.next_run_at < now:
        pending.append(schedule.next_run_at)
    return min(pending) if pending else None


def audit_schedules_check_overdue(*, now: datetime | None = None) -> int:
    """Mark schedules with a due time unanswered past their grace as overdue, and alert once per incident."""
    now = now or timezone.now()
    marked = 0
    candidates = AuditSchedule.objects.filter(enabled=True, overdue_since__isnull=True).select_related(
        "last_run", "ai_model"
    )
    for schedule in candidates:
        due = _pending_due(schedule, now)
        if due is None or now < due + timedelta(minutes=schedule.grace_minutes):
            continue
        with transaction.atomic():
            if not AuditSchedule.objects.filter(pk=schedule.pk, overdue_since__isnull=True).update(overdue_since=now):
                continue
            alert_raise(
                ai_model=schedule.ai_model,
                kind=Alert.Kind.SCHEDULE_OVERDUE,
                incident_key=f"schedule_overdue:{schedule.pk}",
                title=f"Audit schedule {schedule.name!r} of {schedule.ai_model.name} is overdue",
                details={
                    "schedule": schedule.pk,
                    "due_at": due.isoformat(),
                    "grace_minutes": schedule.grace_minutes,
                    "last_outcome": schedule.last_outcome or "never fired",
                },
            )
        marked += 1
    return marked


def schedule_run_finished(run: AuditRun) -> None:
    """A run of a schedule finished: if it answers the latest due time, the schedule is no longer overdue."""
    if run.schedule_id is None:
        return
    AuditSchedule.objects.filter(pk=run.schedule_id, last_due_at=run.window_end).update(overdue_since=None)
    schedule = AuditSchedule.objects.select_related("ai_model").get(pk=run.schedule_id)
    if schedule.overdue_since is None:
        alerts_resolve_key(
            ai_model=schedule.ai_model,
            incident_key=f"schedule_overdue:{schedule.pk}",
            resolution=f"run {run.pk} finished",
        )
