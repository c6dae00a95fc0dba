"""The JSON export: a versioned envelope that validates against its schema; raw figures only behind a role."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import jsonschema
import pytest

from governance.models import GovernanceEvent
from reports.exporters.json import SCHEMA_VERSION
from reports.services import monitoring_report_generate, report_generate_for_run
from tests.conftest import client_for

pytestmark = pytest.mark.django_db
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "reports/exporters/schemas/report-v2.schema.json").read_text()
)


def test_audit_and_monitoring_reports_export_as_json_that_validates(team, finished_run) -> None:
    audit = report_generate_for_run(run=finished_run, actor=team.owner)
    monitoring = monitoring_report_generate(
        ai_model=finished_run.model_version.ai_model, start=date(2026, 10, 1), end=date(2026, 11, 1), actor=team.owner
    )
    viewer = client_for(team.viewer, team.organization, scope="read")
    for report in (audit, monitoring):
        body = viewer.get(f"/api/v1/reports/{report.pk}/json/").json()
        jsonschema.validate(body, SCHEMA)
        assert (body["schema_version"], body["sha256"], body["kind"]) == (SCHEMA_VERSION, report.sha256, report.kind)
        assert "raw_result" not in body
    published = viewer.get(f"/api/v1/reports/{audit.pk}/json/").json()["data"]["result"]["fairness"]["groups"]
    assert next(g for g in published if g["group"] == "Pacific Islander")["n"] is None


def test_raw_figures_need_an_auditor_approver_or_admin_and_leave_a_trace(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    url = f"/api/v1/reports/{report.pk}/json/?raw=true"
    assert client_for(team.viewer, team.organization, scope="read").get(url).status_code == 403
    assert client_for(team.owner, team.organization).get(url).status_code == 403
    assert client_for(team.outsider, team.outsider_organization).get(url).status_code == 404
    response = client_for(team.approver, team.organization, scope="read").get(url)
    assert response.status_code == 200 and response["X-Contains-Small-Cells"] == "true"
    body = response.json()
    jsonschema.validate(body, SCHEMA)
    raw = next(g for g in body["raw_result"]["fairness"]["groups"] if g["group"] == "Pacific Islander")
    assert raw["n"] == 8
    event = GovernanceEvent.objects.get(action="report.raw_exported")
    assert event.actor == team.approver and event.after == {"sha256": report.sha256}


def test_raw_figures_exist_for_audit_reports_only(team, model_version) -> None:
    report = monitoring_report_generate(
        ai_model=model_version.ai_model, start=date(2026, 10, 1), end=date(2026, 11, 1), actor=team.owner
    )
    response = client_for(team.approver, team.organization).get(f"/api/v1/reports/{report.pk}/json/?raw=1")
    assert response.status_code == 400 and "audit reports only" in str(response.json()["raw"])
