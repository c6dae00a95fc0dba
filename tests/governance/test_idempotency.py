"""Idempotency-Key: a retried submission returns the first result, never a second run, even when the
duplicates arrive at the same moment."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection

from audits.models import AuditRun
from governance.models import Dataset
from tests.conftest import CLINICAL_ROLES, client_for, clinical_frame, csv_upload, upload_frame


@pytest.mark.django_db
def test_a_retried_upload_returns_the_first_dataset(team, media_root) -> None:
    client = client_for(team.owner, team.organization)
    frame = clinical_frame(300)

    def upload():
        return client.post(
            "/api/v1/datasets/",
            {
                "organization": "st-elsewhere",
                "name": "eval",
                "file": csv_upload(frame),
                "column_roles": json.dumps(CLINICAL_ROLES),
            },
            format="multipart",
            HTTP_IDEMPOTENCY_KEY="build-1842-upload",
        )

    first, second = upload(), upload()
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] == second.json()["id"]
    assert second["Idempotent-Replayed"] == "true"
    assert Dataset.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_for_a_different_request_is_refused(team, model_version, media_root) -> None:
    client = client_for(team.owner, team.organization)
    dataset = upload_frame(team, clinical_frame(200), name="a")
    url = "/api/v1/audits/"
    client.post(
        url, {"model_version": model_version.pk, "dataset": dataset.pk}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    other = client.post(
        url,
        {"model_version": model_version.pk, "dataset": dataset.pk, "reference_dataset": None},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert other.status_code == 422
    assert "used for a different request" in other.json()["detail"]
    assert AuditRun.objects.count() == 1


@pytest.mark.django_db
def test_an_error_response_is_replayed_too(team, model_version) -> None:
    client = client_for(team.owner, team.organization)
    body = {"model_version": model_version.pk, "dataset": 999999}
    first = client.post("/api/v1/audits/", body, format="json", HTTP_IDEMPOTENCY_KEY="bad")
    second = client.post("/api/v1/audits/", body, format="json", HTTP_IDEMPOTENCY_KEY="bad")
    assert first.status_code == second.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_submissions_start_exactly_one_run(team, model_version, media_root) -> None:
    dataset = upload_frame(team, clinical_frame(300), name="current")
    clients = [client_for(team.owner, team.organization) for _ in range(6)]
    responses: list = []
    barrier = threading.Barrier(len(clients))

    def submit(client) -> None:
        barrier.wait()
        try:
            responses.append(
                client.post(
                    "/api/v1/audits/",
                    {"model_version": model_version.pk, "dataset": dataset.pk},
                    format="json",
                    HTTP_IDEMPOTENCY_KEY="pipeline-77-audit",
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(responses) == 6
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert AuditRun.objects.count() == 1
    assert sum(r.get("Idempotent-Replayed") == "true" for r in responses) == 5
