"""Audit schedules: due times, firing each due time once even with sweeps racing, overdue schedules and their alerts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audits.models import Alert, AuditRun, AuditSchedule
from audits.services import audit_run_execute
from audits.services.alerts import alert_notify
from audits.services.schedules import (
    audit_schedules_check_overdue,
    audit_schedules_fire,
    schedule_next_due,
)
from governance.models import Dataset, ModelVersion
from tests.conftest import client_for, deploy_version, run_concurrently, stream_upload, upload_frame, wait_for_run
from tests.data import clinical_frame

DUE = datetime(2026, 11, 12, tzinfo=UTC)


def _schedule(team, version: ModelVersion, **fields) -> AuditSchedule:
    client = client_for(team.owner, team.organization)
    response = client.post(
        f"/api/v1/models/{version.ai_model_id}/schedules/",
        {"name": "weekly fairness", "interval_minutes": 1440, "window_days": 7, **fields},
        format="json",
    )
    assert response.status_code == 201, response.json()
    AuditSchedule.objects.filter(pk=response.json()["id"]).update(next_run_at=DUE)
    return AuditSchedule.objects.get(pk=response.json()["id"])


def test_a_cron_schedule_is_due_at_the_next_matching_time_of_its_own_time_zone() -> None:
    schedule = AuditSchedule(cron="30 6 * * *", timezone="America/New_York")
    # 2026-03-08 is the start of daylight saving time in New York: 06:30 is then 10:30 UTC, not 11:30.
    assert schedule_next_due(schedule, after=datetime(2026, 3, 7, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 8, 10, 30, tzinfo=UTC
    )
    assert schedule_next_due(schedule, after=datetime(2026, 11, 25, 10, 0, tzinfo=UTC)) == datetime(
        2026, 11, 25, 11, 30, tzinfo=UTC
    )
    monday = AuditSchedule(cron="0 7 * * 1", timezone="UTC")
    assert schedule_next_due(monday, after=datetime(2026, 11, 25, tzinfo=UTC)) == datetime(2026, 11, 30, 7, tzinfo=UTC)


def test_an_interval_schedule_that_missed_due_times_fires_once_and_keeps_its_rhythm() -> None:
    schedule = AuditSchedule(interval_minutes=60, next_run_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert schedule_next_due(schedule, after=datetime(2026, 11, 25, 13, 30, tzinfo=UTC)) == datetime(
        2026, 11, 25, 14, 0, tzinfo=UTC
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", "61"),
        ({"cron": "0 7 * *"}, "cron", "five fields"),
        ({"cron": "0 7 * * *", "interval_minutes": 60}, "cron", "not both"),
        ({"cron": "0 7 * * *", "timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
    ],
)
def test_a_schedule_with_a_bad_cadence_is_refused_naming_the_field(team, model_version, fields, field, message) -> None:
    client = client_for(team.owner, team.organization)
    response = client.post(
        f"/api/v1/models/{model_version.ai_model_id}/schedules/",
        {"name": "bad", "interval_minutes": None, **fields},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["field"] == field and message in response.json()["detail"]
    assert not AuditSchedule.objects.exists()


@pytest.mark.django_db
def test_schedules_are_kept_from_viewers_and_outsiders(team, model_version) -> None:
    url = f"/api/v1/models/{model_version.ai_model_id}/schedules/"
    body = {"name": "daily", "cron": "0 6 * * *"}
    assert client_for(team.viewer, team.organization).post(url, body, format="json").status_code == 403
    assert client_for(team.outsider, team.outsider_organization).get(url).status_code == 404
    created = client_for(team.owner, team.organization).post(url, body, format="json").json()
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.patch(f"/api/v1/schedules/{created['id']}/", {"enabled": False}, format="json").status_code == 404


@pytest.mark.django_db
def test_a_due_schedule_fires_once_and_queues_an_audit_of_its_window_of_thestream_upload(
    team, model_version, media_root
) -> None:
    version = deploy_version(model_version)
    stream_upload(team, version)
    schedule = _schedule(team, version, checks=["fairness", "quality"])

    assert audit_schedules_fire(now=DUE + timedelta(minutes=1)) == {"fired": 1, "skipped": 0}
    assert audit_schedules_fire(now=DUE + timedelta(minutes=2)) == {"fired": 0, "skipped": 0}
    run = AuditRun.objects.get()
    assert (run.schedule_id, run.window_start, run.window_end) == (schedule.pk, DUE - timedelta(days=7), DUE)
    assert run.checks == ["fairness", "quality"] and run.reference_dataset is None
    assert run.dataset.kind == Dataset.Kind.PRODUCTION
    assert run.dataset.provenance["window"] == {
        "start": "2026-11-05T00:00:00+00:00",
        "end": "2026-11-12T00:00:00+00:00",
    }
    schedule.refresh_from_db()
    assert schedule.next_run_at == DUE + timedelta(days=1)
    assert schedule.last_run_id == run.pk and schedule.last_outcome.startswith(f"run {run.pk} queued")

    audit_run_execute(run_id=run.pk, worker="test")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert run.result["checks"] == ["fairness", "quality"]
    assert {f["category"] for f in run.result["findings"]} <= {"fairness", "label_choice", "quality"}


@pytest.mark.django_db(transaction=True)
def test_two_beat_sweeps_racing_fire_a_due_schedule_exactly_once(team, model_version, media_root) -> None:
    version = deploy_version(model_version)
    stream_upload(team, version)
    _schedule(team, version)
    results = run_concurrently(lambda: audit_schedules_fire(now=DUE + timedelta(seconds=30)), 2)
    assert sorted(r["fired"] for r in results) == [0, 1]
    assert AuditRun.objects.count() == 1
    assert Dataset.objects.filter(kind=Dataset.Kind.PRODUCTION).count() == 1


@pytest.mark.django_db
def test_a_schedule_that_cannot_run_goes_overdue_after_its_grace_and_alerts_its_owners_once(
    team, model_version
) -> None:
    model_version.ai_model.owner = team.owner
    model_version.ai_model.alert_emails = "committee@example.org, olivia@example.org"
    model_version.ai_model.save()
    schedule = _schedule(team, model_version, grace_minutes=60)  # the version is not deployed

    assert audit_schedules_fire(now=DUE) == {"fired": 0, "skipped": 1}
    schedule.refresh_from_db()
    assert schedule.last_outcome == "skipped: the model has no deployed version and the schedule names none"
    assert audit_schedules_check_overdue(now=DUE + timedelta(minutes=59)) == 0
    assert audit_schedules_check_overdue(now=DUE + timedelta(minutes=61)) == 1
    assert audit_schedules_check_overdue(now=DUE + timedelta(minutes=90)) == 0
    alert = Alert.objects.get()
    assert (alert.kind, alert.incident_key) == ("schedule_overdue", f"schedule_overdue:{schedule.pk}")
    assert alert.details["last_outcome"].startswith("skipped: the model has no deployed version")
    assert alert_notify(alert_ids=[alert.pk]) == 1
    assert alert_notify(alert_ids=[alert.pk]) == 0
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["olivia@example.org", "committee@example.org"]
    assert "overdue" in mail.outbox[0].subject and "skipped" in mail.outbox[0].body


@pytest.mark.django_db
def test_a_finished_run_of_an_overdue_schedule_clears_it_and_resolves_its_alert(
    team, model_version, media_root
) -> None:
    version = deploy_version(model_version)
    stream_upload(team, version)
    schedule = _schedule(team, version, grace_minutes=30)
    audit_schedules_fire(now=DUE)
    # No worker took the run in time.
    assert audit_schedules_check_overdue(now=DUE + timedelta(minutes=31)) == 1
    assert Alert.objects.get().is_open

    audit_run_execute(run_id=AuditRun.objects.get().pk, worker="late")
    schedule.refresh_from_db()
    assert schedule.overdue_since is None
    alert = Alert.objects.get(kind="schedule_overdue")
    assert not alert.is_open and alert.resolution.startswith("run ")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_beat_task_fires_a_due_schedule_and_a_worker_finishes_its_audit(
    team, model_version, media_root, live_worker
) -> None:
    from audits.tasks import fire_due_schedules

    version = deploy_version(model_version)
    stream_upload(team, version, start=(timezone.now() - timedelta(days=10)).strftime("%Y-%m-%d"))
    upload_frame(team, clinical_frame(3000, seed=9), name="training", kind="reference", ai_model=version.ai_model)
    schedule = _schedule(team, version)
    AuditSchedule.objects.filter(pk=schedule.pk).update(next_run_at=timezone.now() - timedelta(seconds=5))

    fire_due_schedules.delay()
    deadline = timezone.now() + timedelta(seconds=60)
    while not AuditRun.objects.exists() and timezone.now() < deadline:
        threading.Event().wait(0.5)
    run = wait_for_run(AuditRun.objects.get(), timeout=180)
    assert run.status == "succeeded", run.error
    assert run.reference_dataset is not None and run.result["drift"] is not None
    schedule.refresh_from_db()
    assert schedule.last_run_id == run.pk and schedule.overdue_since is None


@pytest.mark.django_db
def test_a_schedule_that_breaks_while_firing_keeps_its_due_time_and_does_not_stop_the_others(
    team, model_version, media_root
) -> None:
    from django.core.files.storage import default_storage

    from audits.models import PredictionBatch
    from tests.factories import ModelVersionFactory

    broken_version = deploy_version(model_version)
    stream_upload(team, broken_version)
    other_version = ModelVersionFactory(ai_model__organization=team.organization)
    stream_upload(team, other_version)
    broken = _schedule(team, broken_version, model_version=broken_version.pk)
    working = _schedule(team, other_version, model_version=other_version.pk)
    # Storage lost a batch of the first stream.
    default_storage.delete(PredictionBatch.objects.filter(model_version=broken_version).first().file.name)

    assert audit_schedules_fire(now=DUE) == {"fired": 1, "skipped": 0}
    broken.refresh_from_db()
    working.refresh_from_db()
    assert broken.next_run_at == DUE and broken.last_run is None
    assert working.last_run.model_version_id == other_version.pk
