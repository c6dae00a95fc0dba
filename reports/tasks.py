"""Celery tasks of reports: each calls one service."""

from __future__ import annotations

from celery import shared_task

from reports.services import monthly_reports_generate


# Beat sends this on the first of each month; a report already made for the month is not made again.
@shared_task(ignore_result=True, expires=6 * 3600, soft_time_limit=3600, time_limit=3700)
def generate_monthly_reports() -> int:
    return monthly_reports_generate()
