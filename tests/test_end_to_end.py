"""From upload to result through HTTP only, with a real Celery worker consuming from the Redis broker."""

from __future__ import annotations

import json
import time

import pytest

from audits.models import AuditRun, MetricResult
from tests.aif360_reference import assert_disparities_match_aif360
from tests.conftest import CLINICAL_ROLES, client_for, clinical_frame, csv_upload


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_audit_started_through_the_api_is_finished_by_a_worker_and_matches_aif360(
    team, live_worker, media_root
) -> None:
    from django.conf import settings

    # The point of this test is the real broker: refuse to pass on the embedded one.
    assert settings.CELERY_BROKER_URL.startswith("redis://"), settings.CELERY_BROKER_URL
    client = client_for(team.owner, team.organization)
    model = client.post(
        "/api/v1/models/",
        {
            "organization": "st-elsewhere",
            "name": "Sepsis alert",
            "slug": "sepsis-alert",
            "intended_use": "Early warning of sepsis in adult inpatients",
        },
        format="json",
    ).json()
    version = client.post(f"/api/v1/models/{model['id']}/versions/", {"version": "3.0.0"}, format="json").json()
    current_frame = clinical_frame(5000, seed=21)
    datasets = {}
    for name, frame in (("current", current_frame), ("reference", clinical_frame(5000, seed=22, shift=0.2))):
        response = client.post(
            "/api/v1/datasets/",
            {
                "organization": "st-elsewhere",
                "name": name,
                "file": csv_upload(frame),
                "column_roles": json.dumps(CLINICAL_ROLES),
                "ai_model": model["id"],
            },
            format="multipart",
        )
        assert response.status_code == 201, response.json()
        datasets[name] = response.json()["id"]

    started = client.post(
        "/api/v1/audits/",
        {
            "model_version": version["id"],
            "dataset": datasets["current"],
            "reference_dataset": datasets["reference"],
        },
        format="json",
    )
    assert started.status_code == 201, started.json()
    assert started.json()["status"] == "queued"
    run_id = started.json()["id"]

    deadline = time.monotonic() + 180
    while True:
        body = client.get(f"/api/v1/audits/{run_id}/").json()
        if body["status"] in ("succeeded", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert body["status"] == "succeeded", body["error"]
    assert body["attempt"] == 1

    disparities = body["result"]["fairness"]["disparities"]
    # race: 3 comparisons, sex: 1, race&sex: 7; each with 7 metrics of the decision and 4 of the score.
    assert len(disparities) == (3 + 1 + 7) * (7 + 4)
    assert_disparities_match_aif360(current_frame, disparities, label="sepsis", prediction="alert")
    for disparity in disparities:
        stored = MetricResult.objects.get(
            run_id=run_id, metric=disparity["metric"], attribute=disparity["attribute"], group=disparity["group"]
        )
        assert stored.value == pytest.approx(disparity["value"], abs=1e-12)
    black = next(d for d in disparities if d["group"] == "Black" and d["metric"] == "disparate_impact")
    assert black["value"] < 0.8  # the synthetic model under-flags this group by construction

    report = client.get(f"/api/v1/audits/{run_id}/drift-report/")
    assert report.status_code == 200
    assert b"<html" in b"".join(report.streaming_content)[:2000].lower()
    assert AuditRun.objects.get(pk=run_id).finished_at is not None
