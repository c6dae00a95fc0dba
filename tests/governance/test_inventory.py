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
    by_critical = _names(client.get("/admin/governance/aimodel/?o=-5").content.decode())
    assert by_critical.index(audited.name) < by_critical.index(quiet.name)
