"""The model inventory: stage, last verdict, open critical findings, overdue schedules, HTI-1; filters and sorting."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from audits.models import Alert, AuditSchedule
from audits.services import audit_run_create, audit_run_execute
from audits.services.schedules import audit_schedule_create
from tests.conftest import clinical_frame, upload_frame
from tests.factories import AIModelFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


def _names(html: str) -> list[str]:
    return re.findall(r'<th class="field-name"><a href="[^"]+">([^<]+)</a>', html)


def test_the_inventory_shows_what_needs_attention_and_filters_and_sorts_on_it(
    client, team, model_version, media_root
) -> None:
    audited = model_version.ai_model
    dataset = upload_frame(team, clinical_frame(8000, seed=91), name="held-out")
    run = audit_run_create(model_version=model_version, dataset=dataset, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="test")
    schedule = audit_schedule_create(ai_model=audited, actor=team.owner, name="Weekly", cron="0 6 * * 1")
    AuditSchedule.objects.filter(pk=schedule.pk).update(overdue_since=timezone.now())
    quiet = ModelVersionFactory(ai_model=AIModelFactory(organization=team.organization, name="Quiet model")).ai_model
    critical = Alert.objects.filter(ai_model=audited, kind="critical_finding", resolved_at__isnull=True).count()
    assert critical >= 1

    team.owner.is_staff = team.owner.is_superuser = True
    team.owner.save()
    client.force_login(team.owner)
    page = client.get("/admin/governance/aimodel/").content.decode()
    row = page.split(audited.name, 1)[1].split("</tr>", 1)[0]
    assert "FAIL" in row and f'<td class="field-critical">{critical}</td>' in row
    assert '<td class="field-overdue">1</td>' in row and "of 31" in row
    assert f'<td class="field-stage">{model_version.stage}</td>' in row
    assert _names(client.get("/admin/governance/aimodel/?attention=any").content.decode()) == [audited.name]
    assert _names(client.get("/admin/governance/aimodel/?verdict=none").content.decode()) == [quiet.name]
    by_critical = _names(client.get("/admin/governance/aimodel/?o=-6").content.decode())
    assert by_critical.index(audited.name) < by_critical.index(quiet.name)


def test_the_model_page_gathers_versions_data_schedules_trends_and_reports(
    client, team, model_version, media_root
) -> None:
    from datetime import timedelta

    from audits.services.stream import production_window_snapshot
    from reports.services import report_generate_for_run
    from tests.conftest import deploy_version, stream_upload

    version = deploy_version(model_version)
    now = timezone.now()
    stream_upload(team, version, start=(now - timedelta(days=20)).strftime("%Y-%m-%d"), days=19)
    for weeks_ago in (2, 1):
        end = now - timedelta(days=7 * weeks_ago - 6)
        window = production_window_snapshot(
            model_version=version, start=end - timedelta(days=7), end=end, actor=team.owner
        )
        run = audit_run_create(
            model_version=version,
            dataset=window,
            reference_dataset=None,
            actor=team.owner,
            window=(end - timedelta(days=7), end),
        )
        audit_run_execute(run_id=run.pk, worker="test")
    run.refresh_from_db()
    report = report_generate_for_run(run=run, actor=team.owner)
    audit_schedule_create(ai_model=version.ai_model, actor=team.owner, name="Weekly", cron="0 6 * * 1")

    team.owner.is_staff = team.owner.is_superuser = True
    team.owner.save()
    client.force_login(team.owner)
    listing = client.get("/admin/governance/aimodel/").content.decode()
    assert f'aria-label="Overview of {version.ai_model.name}"' in listing
    page = client.get(f"/admin/governance/aimodel/{version.ai_model.pk}/overview/").content.decode()
    assert version.version in page and "Weekly" in page and report.title in page
    assert page.count("<svg") >= 3  # disparate impact, equal opportunity, sensitivity, AUROC, history
    assert "Pacific" not in page
