"""Audit runs: claimed once, leases that lapse, results only from the attempt that holds the run."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audits.models import AuditRun, MetricResult
from audits.services import (
    audit_run_claim,
    audit_run_create,
    audit_run_execute,
    audit_runs_sweep,
)
from audits.services.execution import finish_succeeded
from governance.models import GovernanceEvent
from tests.aif360_reference import aif360_metric, aif360_value
from tests.conftest import CLINICAL_ROLES, clinical_frame, upload_frame

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(team, model_version, media_root) -> AuditRun:
    current = upload_frame(team, clinical_frame(2000, seed=1), name="current")
    reference = upload_frame(team, clinical_frame(2000, seed=2, shift=0.4), name="reference", kind="reference")
    return audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)


def test_a_run_is_created_queued_and_recorded(run, team) -> None:
    assert run.status == AuditRun.Status.QUEUED
    event = GovernanceEvent.objects.get(action="audit_run.queued", object_id=str(run.pk))
    assert event.actor == team.owner


def test_a_run_is_claimed_by_exactly_one_of_two_workers(run) -> None:
    assert audit_run_claim(run_id=run.pk, worker="a") == 1
    assert audit_run_claim(run_id=run.pk, worker="b") is None
    run.refresh_from_db()
    assert (run.status, run.worker, run.attempt) == (AuditRun.Status.RUNNING, "a", 1)
    assert run.lease_expires_at > timezone.now()


def test_executing_a_run_stores_metrics_that_equal_aif360(run) -> None:
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    assert run.status == AuditRun.Status.SUCCEEDED, run.error
    frame = clinical_frame(2000, seed=1)
    rows = MetricResult.objects.filter(run=run, metric="equal_opportunity_difference", attribute="race")
    assert rows.count() == 3
    for row in rows:
        metric = aif360_metric(
            frame, label="sepsis", prediction="alert", attribute="race", group=row.group, reference="White"
        )
        assert row.value == pytest.approx(aif360_value(metric, "equal_opportunity_difference"), abs=1e-9)
        assert row.reference_group == "White"
    assert run.result["drift"]["dataset_drift"] is True
    assert run.drift_report_file.name.endswith("drift-report.html")
    assert (
        MetricResult.objects.filter(run=run, category="quality", metric="missing_share").count()
        == len(CLINICAL_ROLES["features"]) + 5
    )
    # A second delivery of the same task finds the run finished and does nothing.
    audit_run_execute(run_id=run.pk, worker="other")
    assert MetricResult.objects.filter(run=run).count() == len(run.metrics.all())
    run.refresh_from_db()
    assert run.attempt == 1


def test_the_sweeper_hands_back_a_run_whose_lease_lapsed(run) -> None:
    audit_run_claim(run_id=run.pk, worker="dead-worker")
    AuditRun.objects.filter(pk=run.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1), created_at=timezone.now() - timedelta(hours=1)
    )
    first = audit_runs_sweep()
    second = audit_runs_sweep()
    assert first == {
        "requeued": 1,
        "redispatched": 1,
        "given_up": 0,
        "tasks_requeued": 0,
        "tasks_redispatched": 0,
        "tasks_given_up": 0,
    }
    assert second == {
        "requeued": 0,
        "redispatched": 0,
        "given_up": 0,
        "tasks_requeued": 0,
        "tasks_redispatched": 0,
        "tasks_given_up": 0,
    }
    run.refresh_from_db()
    assert run.status == AuditRun.Status.QUEUED
    assert audit_run_claim(run_id=run.pk, worker="new-worker") == 2


def test_a_run_interrupted_again_and_again_fails_saying_why_instead_of_looping(run, settings) -> None:
    settings.AUDIT_RUN_MAX_ATTEMPTS = 3
    for attempt in (1, 2, 3):
        assert audit_run_claim(run_id=run.pk, worker=f"lost-{attempt}") == attempt
        AuditRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        counts = audit_runs_sweep()
        assert counts["given_up"] == (1 if attempt == 3 else 0)
    run.refresh_from_db()
    assert run.status == AuditRun.Status.FAILED
    assert run.error.startswith("the run was interrupted 3 times")
    assert GovernanceEvent.objects.get(action="audit_run.failed", object_id=str(run.pk)).after["attempt"] == 3


def test_the_sweeper_leaves_a_fresh_queued_run_alone(run) -> None:
    assert audit_runs_sweep() == {
        "requeued": 0,
        "redispatched": 0,
        "given_up": 0,
        "tasks_requeued": 0,
        "tasks_redispatched": 0,
        "tasks_given_up": 0,
    }


def test_an_attempt_that_lost_its_claim_cannot_store_results(run) -> None:
    audit_run_claim(run_id=run.pk, worker="slow")
    AuditRun.objects.filter(pk=run.pk).update(status=AuditRun.Status.QUEUED)
    assert audit_run_claim(run_id=run.pk, worker="fast") == 2
    stale = {
        "rows": 1,
        "fairness": {"groups": [], "disparities": []},
        "drift": None,
        "quality": {"columns": [], "duplicate_share": 0, "duplicate_rows": 0},
    }
    finish_succeeded(AuditRun.objects.get(pk=run.pk), 1, stale, None)
    run.refresh_from_db()
    assert run.status == AuditRun.Status.RUNNING
    assert run.metrics.count() == 0


def test_a_run_that_cannot_be_audited_fails_with_a_readable_error(team, model_version, media_root) -> None:
    current = upload_frame(team, clinical_frame(300), name="current")
    renamed = clinical_frame(300).rename(
        columns={"sepsis": "outcome", "alert": "flag", "score": "p", "age": "a", "lactate": "l", "ward": "w"}
    )
    reference = upload_frame(
        team,
        renamed,
        name="reference",
        roles={
            "label": "outcome",
            "prediction": "flag",
            "protected": [{"column": "race", "reference": "White"}],
        },
    )
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    assert run.status == AuditRun.Status.FAILED
    assert run.error == "the reference dataset shares none of the audited dataset's feature columns"
    assert GovernanceEvent.objects.filter(action="audit_run.failed", object_id=str(run.pk)).exists()


def test_an_identifier_in_the_upload_is_a_critical_finding_and_fails_the_verdict(team, model_version, media_root):
    frame = clinical_frame(500)
    frame["patient_email"] = [f"p{i}@hospital.example" for i in range(500)]
    dataset = upload_frame(team, frame, name="leaky")
    assert [(h["column"], h["kind"]) for h in dataset.identifier_scan] == [("patient_email", "email")]
    run = audit_run_create(model_version=model_version, dataset=dataset, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    finding = run.findings.get(metric="direct_identifier")
    assert (finding.severity, finding.column) == ("critical", "patient_email")
    assert "hospital.example" not in finding.message
    assert run.verdict == "fail"


def test_a_reference_brings_schema_range_and_category_checks(team, model_version, media_root) -> None:
    reference_frame = clinical_frame(1000, seed=1)
    current_frame = clinical_frame(1000, seed=2)
    current_frame.loc[current_frame.index[:100], "ward"] = "telemetry"
    current_frame.loc[current_frame.index[100:150], "lactate"] = 99.0
    reference = upload_frame(team, reference_frame, name="reference", kind="reference")
    current = upload_frame(
        team, current_frame.drop(columns=["score"]), name="current", roles={**CLINICAL_ROLES, "score": None}
    )
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    quality = run.result["quality"]
    assert quality["schema"]["missing_columns"] == ["score"]
    columns = {c["column"]: c for c in quality["columns"]}
    assert (columns["ward"]["unseen_categories"], columns["ward"]["unseen_rows"]) == (1, 100)
    assert columns["lactate"]["out_of_range"] >= 50
    metrics = set(run.findings.values_list("metric", flat=True))
    assert {"schema_change", "unseen_category_share", "out_of_range_share"} <= metrics


def test_an_audit_across_organizations_is_refused(team, model_version, media_root) -> None:
    from governance import services
    from governance.services import ServiceError
    from tests.conftest import csv_upload

    foreign = services.dataset_upload(
        organization=team.outsider_organization,
        name="theirs",
        file=csv_upload(clinical_frame(100)),
        filename="x.csv",
        column_roles=CLINICAL_ROLES,
        actor=team.outsider,
    )
    current = upload_frame(team, clinical_frame(100), name="ours")
    with pytest.raises(ServiceError, match="reference_dataset belongs to another organization"):
        audit_run_create(model_version=model_version, dataset=current, reference_dataset=foreign, actor=team.owner)
