"""What an audit report says, on a synthetic model with a disparity built in (it under-flags Black patients)."""

from __future__ import annotations

import pytest

from audits.models import AuditRun, Finding
from audits.services import audit_run_create, audit_run_execute
from governance.services import model_version_transition
from reports.services import report_generate_for_run
from tests.conftest import clinical_frame, upload_frame

pytestmark = pytest.mark.django_db


@pytest.fixture
def biased_run(team, model_version, media_root) -> AuditRun:
    model_version_transition(model_version=model_version, to_stage="validation", actor=team.owner)
    current = upload_frame(team, clinical_frame(8000, seed=71), name="held-out")
    reference = upload_frame(team, clinical_frame(8000, seed=72, shift=0.2), name="training", kind="reference")
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="test")
    run.refresh_from_db()
    assert run.status == AuditRun.Status.SUCCEEDED, run.error
    return run


def test_the_report_documents_the_model_its_data_the_disparity_and_its_method(team, biased_run) -> None:
    report = report_generate_for_run(run=biased_run, actor=team.owner)
    html, data = report.html, report.data
    ai_model = biased_run.model_version.ai_model
    assert ai_model.intended_use in html
    assert biased_run.dataset.sha256 in html and biased_run.reference_dataset.sha256 in html
    black = next(
        d
        for d in data["result"]["fairness"]["disparities"]
        if (d["metric"], d["attribute"], d["group"]) == ("disparate_impact", "race", "Black")
    )
    assert black["value"] < 0.8 and black["status"] == "fail"
    finding = next(f for f in data["result"]["findings"] if f["metric"] == "disparate_impact" and f["group"] == "Black")
    assert finding["severity"] == "critical" and finding["review_status"] == "Open"
    assert "Verdict: FAIL" in html and finding["message"] in html
    shares = {(r["attribute"], r["group"]): r for r in data["representativeness"]}
    black_share = shares[("race", "Black")]
    # Counted here from the generated data, apart from the engines.
    current, reference = clinical_frame(8000, seed=71), clinical_frame(8000, seed=72, shift=0.2)
    assert black_share["current_rows"] == (current["race"] == "Black").sum()
    assert black_share["reference_rows"] == (reference["race"] == "Black").sum()
    assert black_share["current_share"] == pytest.approx((current["race"] == "Black").mean(), abs=1e-12)
    assert [(e["action"], e["after"]) for e in data["lifecycle"]] == [
        ("model_version.stage_changed", {"stage": "validation"})
    ]
    for text in ("Representativeness of each protected group", "Lifecycle of the version", "Thresholds of the policy"):
        assert text in html
    assert "aif360" in html and "evidently" in html.lower()
    assert "<td>disparate_impact</td><td>0.8 to 1.25</td><td>critical</td>" in html.replace("\n", "")


def test_a_regenerated_report_shows_the_review_status_of_the_day_and_the_old_one_stays_as_it_was(
    team, biased_run
) -> None:
    first = report_generate_for_run(run=biased_run, actor=team.owner)
    Finding.objects.filter(run=biased_run, metric="disparate_impact", group="Black").update(
        review_status=Finding.ReviewStatus.ACKNOWLEDGED
    )
    second = report_generate_for_run(run=biased_run, actor=team.owner)
    assert second.version == first.version + 1 and second.sha256 != first.sha256

    def status(report) -> str:
        return next(
            f["review_status"]
            for f in report.data["result"]["findings"]
            if f["metric"] == "disparate_impact" and f["group"] == "Black"
        )

    first.refresh_from_db()
    assert (status(first), status(second)) == ("Open", "Acknowledged")
