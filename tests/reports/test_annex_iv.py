"""EU AI Act Annex IV outline: the nine sections, filled from the service's evidence, missing where it has none."""

from __future__ import annotations

import pytest

from audits.services.schedules import audit_schedule_create
from governance.services import model_version_transition
from reports.services import report_generate_for_run, report_sign
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_the_outline_names_what_is_filled_and_what_is_missing(team, finished_run) -> None:
    version = finished_run.model_version
    url = f"/api/v1/versions/{version.pk}/annex-iv/"
    owner = client_for(team.owner, team.organization)
    before = owner.get(url).json()
    assert [s["number"] for s in before["sections"]] == list(range(1, 10))
    statuses = {s["number"]: s["status"] for s in before["sections"]}
    assert statuses == {
        1: "partial",
        2: "partial",
        3: "filled",
        4: "filled",
        5: "partial",
        6: "filled",
        7: "missing",
        8: "missing",
        9: "missing",
    }
    assert before["sections"][8]["missing"] == ["No enabled audit schedule: create one for the model"]
    assert any("No signed audit report yet" in m for m in before["sections"][1]["missing"])

    model_version_transition(model_version=version, to_stage="validation", actor=team.owner)
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    report_sign(report=report, actor=team.approver, statement="Reviewed by the committee on 2026-11-25.")
    audit_schedule_create(ai_model=version.ai_model, actor=team.owner, name="Weekly", cron="0 6 * * 1")
    after = owner.get(url).json()
    sections = {s["number"]: s for s in after["sections"]}
    assert sections[9]["status"] == "filled"
    logs = next(i for i in sections[2]["items"] if i["label"] == "Dated and signed test logs")["value"]
    assert logs == [
        {**logs[0], "report": report.pk, "report_sha256": report.sha256, "signed_by": "ada", "role": "approver"}
    ]
    lifecycle = next(i for i in sections[6]["items"] if i["label"] == "Lifecycle of this version")["value"]
    assert [(e["action"], e["before"], e["after"], e["by"]) for e in lifecycle] == [
        ("model_version.stage_changed", {"stage": "draft"}, {"stage": "validation"}, "olivia")
    ]
    accuracy = next(i for i in sections[3]["items"] if i["label"] == "Accuracy for specific groups")["value"]
    assert accuracy.startswith(f"Audit run {finished_run.pk} on current") and "AUROC by group from" in accuracy
    assert after["summary"] == {"filled": 4, "partial": 3, "missing": 2}
    assert client_for(team.outsider, team.outsider_organization).get(url).status_code == 404
