"""Audits and light tasks travel on separate queues of the real broker (Redis), so that separate workers can
take them: an audit run goes to "audits", the sweeps, alerts and webhooks to "celery"."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from audits.services import audit_run_create
from governance.celery import app
from tests.conftest import clinical_frame, upload_frame

pytestmark = pytest.mark.django_db(transaction=True)


def _queued(redis, queue: str) -> list[dict]:
    return [json.loads(m) for m in redis.lrange(queue, 0, -1)]


def test_audit_runs_go_to_the_audits_queue_and_light_tasks_to_the_default_one(team, model_version, media_root):
    import redis as redis_client

    app.control.purge()
    broker = redis_client.Redis.from_url(settings.CELERY_BROKER_URL)
    data = upload_frame(team, clinical_frame(100), name="small")
    run = audit_run_create(model_version=model_version, dataset=data, reference_dataset=None, actor=team.owner)
    app.send_task("audits.tasks.sweep_audit_runs")

    audits = _queued(broker, "audits")
    light = _queued(broker, "celery")
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in audits] == [
        ("audits.tasks.run_audit", f"({run.pk},)")
    ]
    assert [m["headers"]["task"] for m in light] == ["audits.tasks.sweep_audit_runs"]
    app.control.purge()
