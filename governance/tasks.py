"""Celery tasks of the registry: each loads by id and calls one service."""

from __future__ import annotations

from celery import shared_task

from governance.webhooks import webhook_delivery_attempt, webhook_delivery_dispatch


# One HTTP call with its own timeout: a stuck delivery must not hold a light worker for long.
@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True, soft_time_limit=60, time_limit=90)
def deliver_webhook(delivery_id: int) -> None:
    countdown = webhook_delivery_attempt(delivery_id=delivery_id)
    if countdown is not None:
        webhook_delivery_dispatch(delivery_id, countdown=countdown)
