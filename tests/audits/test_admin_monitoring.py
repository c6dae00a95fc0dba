"""The monitoring pages of the admin: upload to a production stream, schedule audits, resolve alerts."""

from __future__ import annotations

import re

import pytest

from audits.models import Alert, AuditSchedule, PredictionBatch
from audits.services.alerts import alert_raise
from governance.models import GovernanceEvent
from tests.conftest import csv_upload
from tests.data import production_frames

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, team):
    team.owner.is_staff = team.owner.is_superuser = True
    team.owner.save()
    client.force_login(team.owner)
    return client


def test_a_predictions_batch_uploaded_in_the_admin_joins_thestream_upload(
    staff, team, model_version, media_root
) -> None:
    predictions, outcomes = production_frames(300, seed=8, start="2026-11-01", days=3)
    form = {
        "model_version": model_version.pk,
        "kind": "predictions",
        "file": csv_upload(predictions),
        "record_id": "encounter_id",
        "timestamp": "scored_at",
        "label": "",
        "prediction": "alert",
        "score": "score",
        "protected": "race=White, sex",
        "features": "age, lactate, ward",
        "categorical": "",
    }
    response = staff.post("/admin/audits/predictionbatch/add/", form)
    batch = PredictionBatch.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/predictionbatch/{batch.pk}/change/")
    assert (batch.row_count, batch.column_roles["timestamp"]) == (300, "scored_at")
    bad = staff.post(
        "/admin/audits/predictionbatch/add/",
        {**form, "kind": "outcomes", "file": csv_upload(outcomes), "timestamp": "", "label": "readmitted"},
    )
    (error,) = re.findall(r'class="errornote" role="alert">([^<]*)', bad.content.decode())
    assert error == "column &#x27;readmitted&#x27; named in column_roles is not in the file"
    assert PredictionBatch.objects.count() == 1


def test_a_schedule_made_in_the_admin_goes_through_the_service_and_a_bad_cron_is_shown(
    staff, team, model_version
) -> None:
    form = {
        "ai_model": model_version.ai_model_id,
        "name": "Nightly",
        "cron": "0 2 * * *",
        "timezone": "Europe/Paris",
        "checks": ["fairness", "drift"],
        "window_days": 7,
        "grace_minutes": 120,
        "enabled": "on",
    }
    response = staff.post("/admin/audits/auditschedule/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    schedule = AuditSchedule.objects.get()
    assert schedule.next_run_at is not None and schedule.next_run_at.astimezone().minute == 0
    assert schedule.checks == ["fairness", "drift"]
    assert GovernanceEvent.objects.filter(action="audit_schedule.created", actor=team.owner).exists()
    bad = staff.post(f"/admin/audits/auditschedule/{schedule.pk}/change/", {**form, "cron": "0 25 * * *"})
    assert bad.status_code == 200 and "0 25 * * *" in bad.content.decode()
    schedule.refresh_from_db()
    assert schedule.cron == "0 2 * * *"


def test_alerts_are_resolved_from_the_admin_with_who_did_it(staff, team, model_version) -> None:
    alert = alert_raise(
        ai_model=model_version.ai_model, kind="run_failed", incident_key="k", title="Audit failed", details={}
    )
    listed = staff.get("/admin/audits/alert/?state=open").content.decode()
    assert "Audit failed" in listed
    staff.post("/admin/audits/alert/", {"action": "resolve", "_selected_action": [alert.pk]})
    assert "Audit failed" not in staff.get("/admin/audits/alert/?state=open").content.decode()
    alert.refresh_from_db()
    assert alert.resolved_by == team.owner and "resolved in the admin" in alert.resolution
    assert staff.get(f"/admin/audits/alert/{alert.pk}/change/").status_code == 200
    assert Alert.objects.filter(resolved_at__isnull=True).count() == 0


def test_the_run_page_of_a_scheduled_run_shows_its_window_and_what_was_left_out(
    staff, team, model_version, media_root
) -> None:
    from datetime import UTC, datetime, timedelta

    from audits.models import AuditRun
    from audits.services.schedules import audit_schedule_create, audit_schedules_fire
    from tests.conftest import deploy_version, stream_upload

    version = deploy_version(model_version)
    stream_upload(team, version)
    schedule = audit_schedule_create(ai_model=version.ai_model, actor=team.owner, name="Weekly", interval_minutes=60)
    due = datetime(2026, 11, 12, tzinfo=UTC)
    AuditSchedule.objects.filter(pk=schedule.pk).update(next_run_at=due)
    audit_schedules_fire(now=due + timedelta(seconds=1))
    run = AuditRun.objects.get()
    page = staff.get(f"/admin/audits/auditrun/{run.pk}/change/").content.decode()
    assert "Weekly</a>: production stream from" in page
    provenance = run.dataset.provenance
    assert f"{provenance['awaiting_outcome']} awaiting their outcome left out" in page
    assert staff.get("/admin/audits/auditrun/?schedule__isempty=0").status_code == 200
