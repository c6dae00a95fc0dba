"""The CI gate's verdict: the run's own verdict, and the candidate against the deployed version, group by group."""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone

from audits.engines.comparison import compare_with_deployed
from audits.engines.policy import Policy
from audits.models import AuditRun
from audits.services import audit_run_create, audit_run_execute
from governance.models import ModelVersion
from tests.conftest import client_for, clinical_frame, upload_frame
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


def _finished_run(team, version, frame, name) -> AuditRun:
    dataset = upload_frame(team, frame, name=name)
    run = audit_run_create(model_version=version, dataset=dataset, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    assert run.status == AuditRun.Status.SUCCEEDED, run.error
    return run


def _deploy(version: ModelVersion) -> None:
    ModelVersion.objects.filter(pk=version.pk).update(
        stage=ModelVersion.Stage.DEPLOYED, stage_changed_at=timezone.now()
    )


def test_a_candidate_much_worse_for_one_group_fails_the_gate(team, model_version, media_root) -> None:
    frame = clinical_frame(20_000, seed=11)
    deployed = ModelVersionFactory(ai_model=model_version.ai_model, version="0.9.0")
    _finished_run(team, deployed, frame, "deployed-eval")
    _deploy(deployed)
    worse = frame.copy()
    # The candidate misses half the true cases among Hispanic patients.
    hit = (worse["race"] == "Hispanic") & (worse["sepsis"] == 1) & (np.arange(len(worse)) % 2 == 0)
    worse.loc[hit, "alert"] = 0
    run = _finished_run(team, model_version, worse, "candidate-eval")
    response = client_for(team.viewer, team.organization, scope="read").get(f"/api/v1/audits/{run.pk}/verdict/")
    body = response.json()
    assert body["overall"] == "fail"
    comparison = body["comparison"]
    assert comparison["deployed_version"]["version"] == "0.9.0" and comparison["verdict"] == "fail"
    worse_rows = {(r["attribute"], r["group"], r["metric"]) for r in comparison["groups"] if r["status"] == "worse"}
    assert ("race", "Hispanic", "true_positive_rate") in worse_rows
    assert not any(g == "White" for _, g, _ in worse_rows)


def test_an_identical_candidate_is_not_worse_for_any_group() -> None:
    from audits.engines.audit import audit_chunks
    from audits.engines.tables import ColumnRoles
    from tests.data import CLINICAL_ROLES

    result, _ = audit_chunks([clinical_frame(5000, seed=3)], roles=ColumnRoles.from_dict(CLINICAL_ROLES))
    comparison = compare_with_deployed(result, result, Policy())
    assert comparison["verdict"] == "pass"
    assert {r["status"] for r in comparison["groups"]} <= {"not_worse", "insufficient_data"}
    assert all(r["change"] == 0 for r in comparison["groups"])


def test_without_a_deployed_version_the_gate_says_so_and_judges_the_run_alone(team, model_version, media_root):
    run = _finished_run(team, model_version, clinical_frame(2000), "eval")
    body = client_for(team.owner, team.organization).get(f"/api/v1/audits/{run.pk}/verdict/").json()
    assert body["comparison"] == {"verdict": "no_baseline", "reason": "no other version of this model is deployed"}
    assert body["overall"] == run.verdict


def test_a_queued_run_is_pending(team, model_version, media_root) -> None:
    dataset = upload_frame(team, clinical_frame(200), name="eval")
    run = audit_run_create(model_version=model_version, dataset=dataset, reference_dataset=None, actor=team.owner)
    body = client_for(team.owner, team.organization).get(f"/api/v1/audits/{run.pk}/verdict/").json()
    assert (body["overall"], body["status"], body["comparison"]) == ("pending", "queued", None)
