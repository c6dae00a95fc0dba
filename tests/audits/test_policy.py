"""Policies through the API and what they do to a run's findings and verdict."""

from __future__ import annotations

import pytest

from audits.engines.errors import TableError
from audits.engines.policy import Bound, Policy
from audits.models import AuditRun, Finding
from audits.services import audit_policy_update, audit_run_create, audit_run_execute
from governance.models import GovernanceEvent
from tests.conftest import client_for, clinical_frame, upload_frame

pytestmark = pytest.mark.django_db


def test_a_model_without_a_policy_reads_the_defaults(team, model_version) -> None:
    client = client_for(team.viewer, team.organization, scope="read")
    body = client.get(f"/api/v1/models/{model_version.ai_model_id}/policy/").json()
    assert body["is_default"] is True
    assert body["bounds"]["disparate_impact"] == {"low": 0.8, "high": 1.25, "severity": "critical"}
    assert (body["min_group_size"], body["ci_rule"], body["correction"]) == (30, "interval", "holm")


def test_an_owner_changes_the_policy_and_the_change_is_recorded(team, model_version) -> None:
    client = client_for(team.owner, team.organization)
    url = f"/api/v1/models/{model_version.ai_model_id}/policy/"
    response = client.patch(
        url,
        {"min_group_size": 50, "ci_rule": "point", "bounds": {"disparate_impact": {"low": 0.9, "high": 1.1}}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["is_default"] is False and body["min_group_size"] == 50
    assert body["bounds"]["disparate_impact"] == {"low": 0.9, "high": 1.1, "severity": "critical"}
    event = GovernanceEvent.objects.get(action="audit_policy.changed")
    assert (event.before["min_group_size"], event.after["min_group_size"]) == (30, 50)


def test_a_viewer_cannot_change_the_policy_and_a_bad_policy_is_refused(team, model_version) -> None:
    url = f"/api/v1/models/{model_version.ai_model_id}/policy/"
    assert (
        client_for(team.viewer, team.organization).patch(url, {"min_group_size": 5}, format="json").status_code == 403
    )
    bad = client_for(team.owner, team.organization).patch(
        url, {"bounds": {"disparate_impact": {"low": 0.9, "severity": "fatal"}}}, format="json"
    )
    assert bad.status_code == 400
    assert "severity must be one of critical, warning, info" in bad.json()["detail"]
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.get(url).status_code == 404


def test_a_partial_bound_keeps_the_default_of_what_it_leaves_out() -> None:
    policy = Policy.from_dict({"bounds": {"disparate_impact": {"low": 0.9}, "auroc_difference": {"high": None}}})
    assert policy.bounds["disparate_impact"] == Bound(0.9, 1.25, "critical")
    assert policy.bounds["auroc_difference"] == Bound(-0.05, None, "warning")


def test_policy_from_dict_names_what_is_wrong() -> None:
    with pytest.raises(TableError, match="unknown policy keys: min_size"):
        Policy.from_dict({"min_size": 3})
    with pytest.raises(TableError, match="ci_rule must be 'interval' or 'point'"):
        Policy.from_dict({"ci_rule": "vibes"})


def _run(team, model_version) -> AuditRun:
    current = upload_frame(team, clinical_frame(20_000, seed=5), name="current")
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    assert run.status == AuditRun.Status.SUCCEEDED, run.error
    return run


def test_a_built_in_disparity_yields_a_critical_finding_and_a_failing_verdict(team, model_version, media_root):
    run = _run(team, model_version)
    assert run.verdict == "fail"
    critical = Finding.objects.filter(run=run, severity="critical", metric="disparate_impact", attribute="race")
    assert {f.group for f in critical} == {"Black"}
    finding = critical.get()
    assert finding.ci_high < 0.8 and finding.threshold_low == 0.8
    assert "outside the accepted range 0.8 to 1.25" in finding.message
    response = client_for(team.viewer, team.organization, scope="read").get(f"/api/v1/audits/{run.pk}/")
    api = response.json()
    assert response.status_code == 200, api
    assert api["verdict"] == "fail"
    assert any(f["metric"] == "disparate_impact" and f["group"] == "Black" for f in api["findings"])


def test_a_policy_that_accepts_the_disparity_passes_the_same_data(team, model_version, media_root) -> None:
    audit_policy_update(
        ai_model=model_version.ai_model,
        actor=team.owner,
        bounds={
            "disparate_impact": {"low": 0.5, "high": 2.0, "severity": "critical"},
            "equal_opportunity_difference": {"low": -0.5, "high": 0.5, "severity": "critical"},
        },
    )
    run = _run(team, model_version)
    assert run.verdict == "pass"
    assert run.result["policy"]["bounds"]["disparate_impact"]["low"] == 0.5
    assert not Finding.objects.filter(run=run, severity="critical").exists()
