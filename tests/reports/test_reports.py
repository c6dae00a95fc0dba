"""Reports: frozen, hashed, verifiable, and with small cells suppressed."""

from __future__ import annotations

import pytest

from audits.models import AuditRun
from audits.services import audit_run_create, audit_run_execute
from reports.models import Report
from reports.services import report_generate_for_run, suppress_small_cells
from tests.conftest import client_for, clinical_frame, upload_frame

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_run(team, model_version, media_root) -> AuditRun:
    frame = clinical_frame(1500, seed=4)
    # Eight patients of a small group: their figures must not be published.
    frame.loc[frame.index[:8], "race"] = "Pacific Islander"
    current = upload_frame(team, frame, name="current")
    reference = upload_frame(team, clinical_frame(1500, seed=5), name="reference", kind="reference")
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    assert run.status == AuditRun.Status.SUCCEEDED, run.error
    return run


def test_a_report_is_frozen_with_the_hash_of_its_content_and_verifies(team, finished_run) -> None:
    client = client_for(team.owner, team.organization)
    response = client.post(f"/api/v1/audits/{finished_run.pk}/reports/")
    assert response.status_code == 201, response.json()
    report_id = response.json()["id"]
    verify = client.get(f"/api/v1/reports/{report_id}/verify/").json()
    assert verify["intact"] is True
    assert verify["stored_sha256"] == response.json()["sha256"]
    report = Report.objects.get(pk=report_id)
    assert "Sepsis model" in report.html and "Intended use" in report.html
    with pytest.raises(ValueError, match="frozen"):
        report.save()
    # Regenerating makes a new version; the first is untouched.
    second = client.post(f"/api/v1/audits/{finished_run.pk}/reports/").json()
    assert second["version"] == 2
    assert Report.objects.get(pk=report_id).sha256 == verify["stored_sha256"]


def test_verification_fails_after_the_stored_report_is_tampered_with(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    Report.objects.filter(pk=report.pk).update(html=report.html.replace("Sepsis", "Sepsls"))
    client = client_for(team.owner, team.organization)
    verify = client.get(f"/api/v1/reports/{report.pk}/verify/").json()
    assert verify["intact"] is False
    assert verify["computed_sha256"] != verify["stored_sha256"]


def test_a_group_of_one_to_ten_people_is_suppressed_with_its_disparities(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    groups = {g["group"]: g for g in report.data["result"]["fairness"]["groups"]}
    small = groups["Pacific Islander"]
    assert small["suppressed"] is True
    assert small["n"] is None and small["selection_rate"] is None
    assert groups["White"]["suppressed"] is False and groups["White"]["n"] > 10
    hidden = [d for d in report.data["result"]["fairness"]["disparities"] if d["group"] == "Pacific Islander"]
    assert hidden and all(d["value"] is None for d in hidden)
    assert "suppressed (small cell)" in report.html
    # The run keeps the raw figures; only the published report hides them.
    raw = next(g for g in finished_run.result["fairness"]["groups"] if g["group"] == "Pacific Islander")
    assert raw["n"] == 8


def test_suppression_leaves_a_group_of_exactly_eleven_visible() -> None:
    data = {
        "result": {
            "fairness": {
                "groups": [
                    {"attribute": "a", "group": "x", "n": 11, "selection_rate": 0.5, "is_reference": False},
                    {"attribute": "a", "group": "y", "n": 10, "selection_rate": 0.1, "is_reference": True},
                ],
                "disparities": [{"attribute": "a", "group": "x", "reference": "y", "metric": "m", "value": 5.0}],
            }
        }
    }
    published = suppress_small_cells(data, threshold=10)
    groups = {g["group"]: g for g in published["result"]["fairness"]["groups"]}
    assert groups["x"]["n"] == 11 and groups["y"]["n"] is None
    # A disparity against a suppressed reference group would reveal it too.
    assert published["result"]["fairness"]["disparities"][0]["value"] is None


def test_an_outsider_cannot_read_or_verify_a_report(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.get(f"/api/v1/reports/{report.pk}/").status_code == 404
    assert outsider.get(f"/api/v1/reports/{report.pk}/verify/").status_code == 404
    assert outsider.post(f"/api/v1/audits/{finished_run.pk}/reports/").status_code == 404


def test_the_report_page_serves_the_stored_html_to_members_only(client, team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    assert client.get(f"/reports/{report.pk}/").status_code == 302  # to the login page
    client.force_login(team.viewer)
    response = client.get(f"/reports/{report.pk}/")
    assert response.status_code == 200
    assert response.content.decode() == report.html
    assert response["X-Report-SHA256"] == report.sha256
    client.force_login(team.outsider)
    assert client.get(f"/reports/{report.pk}/").status_code == 404
