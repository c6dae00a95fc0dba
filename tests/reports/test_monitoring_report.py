"""Monitoring reports: a deployed model over a period, trends by group, small groups unpublished, monthly once."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from datetime import UTC, date, datetime

import pytest

from audits.models import MetricResult
from audits.services import audit_run_create, audit_run_execute
from audits.services.stream import production_window_snapshot
from reports.models import Report
from reports.services import monitoring_report_generate, monthly_reports_generate
from tests.conftest import client_for, clinical_frame, deploy_version, run_concurrently, stream_upload, upload_frame
from tests.data import production_frames

WEEKS = [datetime(2026, 11, d, tzinfo=UTC) for d in (1, 8, 15, 22)]


@pytest.fixture
def monitored(team, model_version, media_root):
    """A deployed version with three weekly production audits in November 2026; 6 patients of a small group
    are all in the first week."""
    version = deploy_version(model_version)
    predictions, outcomes = production_frames(4500, seed=51, start="2026-11-01", days=21)
    predictions.loc[predictions.index[:6], "race"] = "Pacific Islander"
    stream_upload(team, version, frames=(predictions, outcomes))
    runs = []
    for start, end in itertools.pairwise(WEEKS):
        window = production_window_snapshot(model_version=version, start=start, end=end, actor=team.owner)
        run = audit_run_create(
            model_version=version, dataset=window, reference_dataset=None, actor=team.owner, window=(start, end)
        )
        audit_run_execute(run_id=run.pk, worker="test")
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
        runs.append(run)
    return version, runs


@pytest.mark.django_db
def test_a_monitoring_report_follows_each_group_across_the_windows_and_hides_small_groups(team, monitored) -> None:
    version, runs = monitored
    # A pre-deployment audit of held-out data in the same month is not production: it is left out.
    held_out = upload_frame(team, clinical_frame(2000, seed=52), name="held-out")
    evaluation = audit_run_create(model_version=version, dataset=held_out, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=evaluation.pk, worker="test")
    report = monitoring_report_generate(
        ai_model=version.ai_model, start=date(2026, 11, 1), end=date(2026, 12, 1), actor=team.owner
    )
    data = report.data
    assert [r["run"] for r in data["runs"]] == [r.pk for r in runs]
    assert data["deployed_version"] == version.version
    black = next(
        s for s in data["trends"]["disparate_impact"]["series"] if (s["attribute"], s["group"]) == ("race", "Black")
    )
    stored = [
        MetricResult.objects.get(run=run, metric="disparate_impact", attribute="race", group="Black") for run in runs
    ]
    assert [p["value"] for p in black["points"]] == [m.value for m in stored]
    assert [p["window_end"][:10] for p in black["points"]] == ["2026-11-08", "2026-11-15", "2026-11-22"]
    assert len(black["changes"]) == 2 and black["changes"][0]["scale"] == "ratio"
    groups = {s["group"] for s in data["trends"]["true_positive_rate"]["series"]}
    assert "Pacific Islander" not in groups and "Pacific Islander" not in report.html
    assert report.html.count("<svg") >= 4
    assert "Performance and fairness over time" in report.html and report.kind == "monitoring"
    # Made on 2026-11-25 or later for November: complete only once December has come.
    assert data["period"]["complete"] == (datetime.now(UTC) >= datetime(2026, 12, 1, tzinfo=UTC))
    again = monitoring_report_generate(
        ai_model=version.ai_model, start=date(2026, 11, 1), end=date(2026, 12, 1), actor=team.owner
    )
    assert again.version == 2


@pytest.mark.django_db(transaction=True)
def test_last_months_report_is_made_once_for_each_deployed_model_even_by_racing_sweeps(team, monitored) -> None:
    version, _ = monitored
    made = run_concurrently(lambda: monthly_reports_generate(today=date(2026, 12, 1)), 2)
    assert sorted(made) == [0, 1]
    report = Report.objects.get(kind="monitoring")
    assert (report.ai_model_id, report.period_start, report.period_end) == (
        version.ai_model_id,
        date(2026, 11, 1),
        date(2026, 12, 1),
    )
    assert report.created_by is None and len(report.data["runs"]) == 3
    assert monthly_reports_generate(today=date(2026, 12, 15)) == 0


@pytest.mark.django_db
def test_monitoring_reports_through_the_api_verify_and_render_as_pdf(team, monitored, tmp_path) -> None:
    version, _ = monitored
    url = f"/api/v1/models/{version.ai_model_id}/monitoring-reports/"
    owner = client_for(team.owner, team.organization)
    created = owner.post(url, {"start": "2026-11-01", "end": "2026-12-01"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["kind"], body["period_start"], body["period_end"]) == ("monitoring", "2026-11-01", "2026-12-01")
    assert owner.get(f"/api/v1/reports/{body['id']}/verify/").json()["intact"] is True
    backwards = owner.post(url, {"start": "2026-12-01", "end": "2026-11-01"}, format="json")
    assert backwards.status_code == 400 and backwards.json()["field"] == "start"
    assert (
        client_for(team.viewer, team.organization)
        .post(url, {"start": "2026-11-01", "end": "2026-12-01"}, format="json")
        .status_code
        == 403
    )
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.post(url, {"start": "2026-11-01", "end": "2026-12-01"}, format="json").status_code == 404
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian's poppler-utils) is not installed")
    pdf = tmp_path / "monitoring.pdf"
    pdf.write_bytes(owner.get(f"/api/v1/reports/{body['id']}/pdf/").content)
    subprocess.run(["pdftoppm", "-png", "-r", "30", str(pdf), str(tmp_path / "page")], check=True)
    assert len(list(tmp_path.glob("page-*.png"))) >= 3
