"""Celery tasks: each loads by id and calls one service."""

from __future__ import annotations

import socket

from celery import shared_task

from audits.services import audit_run_execute, audit_runs_sweep


# acks_late + reject_on_worker_lost: a worker killed mid-audit leaves the message to be
# redelivered; the conditional claim makes a second delivery of a claimed run a no-op,
# and the lease plus the sweeper recover a run whose worker died after claiming it.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_audit(run_id: int) -> None:
    audit_run_execute(run_id=run_id, worker=f"{socket.gethostname()}:{run_audit.request.hostname or ''}")


@shared_task(ignore_result=True, expires=55)
def sweep_audit_runs() -> dict[str, int]:
    return audit_runs_sweep()
