"""Celery tasks: each loads by id and calls one service."""

from __future__ import annotations

import smtplib
import socket

from celery import shared_task

from audits.services import audit_run_execute, audit_runs_sweep
from audits.services.alerts import alert_notify, alerts_sweep_unnotified
from audits.services.schedules import audit_schedules_check_overdue, audit_schedules_fire
from governance.webhooks import webhook_deliveries_sweep


# acks_late + reject_on_worker_lost: a worker killed mid-audit leaves the message to be
# redelivered; the conditional claim makes a second delivery of a claimed run a no-op,
# and the lease plus the sweeper recover a run whose worker died after claiming it.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_audit(run_id: int) -> None:
    audit_run_execute(run_id=run_id, worker=f"{socket.gethostname()}:{run_audit.request.hostname or ''}")


# One partition's statistics, or the merge, of a run fanned out over partitions: same guarantees.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_audit_task(task_id: int) -> None:
    from audits.services.partitions import audit_run_task_execute

    audit_run_task_execute(task_id=task_id, worker=f"{socket.gethostname()}:{run_audit_task.request.hostname or ''}")


@shared_task(ignore_result=True, expires=55, soft_time_limit=240, time_limit=300)
def sweep_audit_runs() -> dict[str, int]:
    counts = audit_runs_sweep()
    counts["alert_notices_resent"] = alerts_sweep_unnotified()
    counts["webhooks_resent"] = webhook_deliveries_sweep()
    return counts


# Beat sends this every minute; a late copy is harmless (the claim is conditional) but useless, so it expires.
# Firing freezes each due schedule's window of the production stream: minutes for a large stream.
@shared_task(ignore_result=True, expires=55, soft_time_limit=1800, time_limit=1900)
def fire_due_schedules() -> dict[str, int]:
    counts = audit_schedules_fire()
    counts["overdue"] = audit_schedules_check_overdue()
    return counts


# SMTP errors and refused connections may pass; the claim inside alert_notify sends one e-mail per alert.
@shared_task(
    acks_late=True,
    ignore_result=True,
    autoretry_for=(smtplib.SMTPException, ConnectionError, TimeoutError),
    retry_backoff=30,
    max_retries=8,
    soft_time_limit=120,
    time_limit=180,
)
def notify_alerts(alert_ids: list[int]) -> None:
    alert_notify(alert_ids=alert_ids)
