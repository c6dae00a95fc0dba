"""Findings triage: acknowledge, mitigate, accept the risk or reopen, with who, when and why; visible in reports."""

from __future__ import annotations

import pytest

from audits.models import Finding, FindingReview
from audits.services import audit_run_create, audit_run_execute
from governance.models import GovernanceEvent
from reports.services import report_generate_for_run
from tests.conftest import client_for, clinical_frame, upload_frame

pytestmark = pytest.mark.django_db


@pytest.fixture
def critical(team, model_version, media_root) -> Finding:
    dataset = upload_frame(team, clinical_frame(8000, seed=81), name="held-out")
    run = audit_run_create(model_version=model_version, dataset=dataset, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="test")
    return Finding.objects.get(run=run, metric="disparate_impact", attribute="race", group="Black")


def test_a_finding_is_acknowledged_then_its_risk_accepted_by_an_approver_with_a_justification(team, critical) -> None:
    url = f"/api/v1/findings/{critical.pk}/triage/"
    owner, approver = client_for(team.owner, team.organization), client_for(team.approver, team.organization)
    assert owner.post(url, {"action": "acknowledge"}, format="json").status_code == 201
    refused = owner.post(url, {"action": "accept_risk", "justification": "x" * 40}, format="json")
    assert refused.status_code == 403
    short = approver.post(url, {"action": "accept_risk", "justification": "fine"}, format="json")
    assert short.status_code == 400 and short.json()["field"] == "justification"
    why = "Pilot on one ward only, with a nurse reviewing every unflagged Black patient; reassess in 3 months."
    accepted = approver.post(url, {"action": "accept_risk", "justification": why}, format="json")
    assert accepted.status_code == 201
    assert (accepted.json()["from_status"], accepted.json()["to_status"]) == ("acknowledged", "risk_accepted")
    again = approver.post(url, {"action": "acknowledge"}, format="json")
    assert again.status_code == 409 and "cannot be acknowledged" in again.json()["detail"]
    critical.refresh_from_db()
    assert critical.review_status == "risk_accepted"
    history = owner.get(url).json()["results"]
    assert [(r["action"], r["reviewed_by"]) for r in history] == [("acknowledge", "olivia"), ("accept_risk", "ada")]
    event = GovernanceEvent.objects.filter(action="finding.triaged").order_by("created_at", "id").last()
    assert event.actor == team.approver and event.after["justification"] == why

    report = report_generate_for_run(run=critical.run, actor=team.owner)
    published = next(
        f for f in report.data["result"]["findings"] if f["metric"] == "disparate_impact" and f["group"] == "Black"
    )
    assert published["review_status"] == "Risk accepted" and published["review_note"].startswith(why)
    assert why in report.html


def test_triage_is_kept_from_viewers_and_outsiders_and_the_admin_cannot_edit_the_status_directly(
    client, team, critical
) -> None:
    url = f"/api/v1/findings/{critical.pk}/triage/"
    assert (
        client_for(team.viewer, team.organization).post(url, {"action": "acknowledge"}, format="json").status_code
        == 403
    )
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.post(url, {"action": "acknowledge"}, format="json").status_code == 404
    team.owner.is_staff = team.owner.is_superuser = True
    team.owner.save()
    client.force_login(team.owner)
    client.post(f"/admin/audits/finding/{critical.pk}/change/", {"review_status": "mitigated"})
    critical.refresh_from_db()
    assert critical.review_status == "open"
    page = client.post(
        f"/admin/audits/finding/{critical.pk}/triage/",
        {"action": "mitigate", "justification": "Threshold lowered for this group in 1.1.0"},
    )
    assert page.status_code == 302
    critical.refresh_from_db()
    assert critical.review_status == "mitigated" and FindingReview.objects.get().reviewed_by == team.owner
