"""Datasets, prediction batches and run artifacts in S3-compatible object storage, against a real S3 protocol
endpoint on loopback: moto's standalone server, started here as its own process (not a mock of boto3).

The switch is configuration only (S3_BUCKET, S3_ENDPOINT_URL): the same upload, audit and report code runs,
the objects land in the bucket with the hashes the database records, and the audit's figures are those of
the same audit on local disk.
"""

from __future__ import annotations

import hashlib
import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from audits.models import MetricResult
from audits.services import audit_run_create, audit_run_execute
from governance.models import Dataset
from reports.services import report_generate_for_run
from tests.conftest import CLINICAL_ROLES, client_for, clinical_frame, csv_upload, stream_upload, upload_frame

pytestmark = pytest.mark.django_db
BUCKET = "clinical-ai-governance-test"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("moto's S3 server did not start")
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def bucket(s3_endpoint: str, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    # What S3_BUCKET and S3_ENDPOINT_URL set in governance.settings.
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3_endpoint,
                "region_name": "us-east-1",
                "default_acl": None,
                "file_overwrite": False,
                "querystring_auth": True,
            },
        },
    }
    yield s3
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    for item in listed:
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])


def _objects(s3: Any) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {item["Key"]: s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() for item in listed}


def test_datasets_batches_and_run_artifacts_live_in_the_bucket_with_the_same_answers(
    team, model_version, media_root, bucket
) -> None:
    current = upload_frame(team, clinical_frame(1500, seed=4), name="current")
    reference = upload_frame(team, clinical_frame(1500, seed=5), name="reference", kind="reference")
    stream_upload(team, model_version, days=3)
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    report_generate_for_run(run=run, actor=team.owner)

    stored = _objects(bucket)
    for dataset in (current, reference):
        assert hashlib.sha256(stored[dataset.file.name]).hexdigest() == dataset.sha256
    assert any(key.startswith(f"stream/{team.organization.slug}/") for key in stored)
    assert run.drift_report_file.name in stored and b"<html" in stored[run.drift_report_file.name].lower()
    # Nothing was written to local disk.
    assert not any(p.is_file() for p in media_root.rglob("*"))

    # The API serves what is in the bucket.
    client = client_for(team.owner, team.organization)
    drift = client.get(f"/api/v1/audits/{run.pk}/drift-report/")
    assert drift.status_code == 200 and b"".join(drift) == stored[run.drift_report_file.name]

    # The same audit on local disk gives the same figures.
    on_s3 = sorted(MetricResult.objects.filter(run=run).values_list("metric", "attribute", "group", "column", "value"))
    local = _local_audit(team, model_version, media_root)
    assert on_s3 == local and len(on_s3) > 50


def _local_audit(team: Any, model_version: Any, media_root: Any) -> list[tuple[Any, ...]]:
    from django.conf import settings
    from django.test import override_settings

    local = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"}}
    with override_settings(STORAGES=local):
        current = upload_frame(team, clinical_frame(1500, seed=4), name="current, on disk")
        reference = upload_frame(team, clinical_frame(1500, seed=5), name="reference, on disk", kind="reference")
        run = audit_run_create(
            model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner
        )
        audit_run_execute(run_id=run.pk, worker="w")
        assert Dataset.objects.get(pk=current.pk).file.storage.__class__.__name__ == "FileSystemStorage"
    return sorted(MetricResult.objects.filter(run=run).values_list("metric", "attribute", "group", "column", "value"))


def test_a_refused_upload_leaves_nothing_in_the_bucket(team, media_root, bucket) -> None:
    frame = clinical_frame(200)
    frame["sepsis"] = 0  # one class: refused after reading, before anything is stored
    body = {
        "organization": "st-elsewhere",
        "name": "one class",
        "file": csv_upload(frame),
        "column_roles": json.dumps(CLINICAL_ROLES),
    }
    response = client_for(team.owner, team.organization).post("/api/v1/datasets/", body, format="multipart")
    assert response.status_code == 400 and "one class" in response.json()["detail"]
    assert _objects(bucket) == {}


def test_a_partitioned_audit_reads_and_writes_the_bucket_and_gives_the_local_answer(
    team, model_version, media_root, bucket, settings, django_capture_on_commit_callbacks
) -> None:
    from audits.models import RunTask
    from audits.services.partitions import audit_run_task_execute

    settings.DATASET_PARTITION_ROWS = 500
    current = upload_frame(team, clinical_frame(1500, seed=4), name="current")
    reference = upload_frame(team, clinical_frame(1500, seed=5), name="reference", kind="reference")
    stored = _objects(bucket)
    for dataset in (current, reference):
        parts = list(dataset.partitions.order_by("index"))
        assert len(parts) == 3
        assert all(hashlib.sha256(stored[p.file.name]).hexdigest() == p.sha256 for p in parts)
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="coordinator")
    written_mid_run: set[str] = set()
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(10):  # play the workers: every queued task, stage after stage
            queued = list(RunTask.objects.filter(run=run, status="queued").order_by("pk").values_list("pk", flat=True))
            for pk in queued:
                audit_run_task_execute(task_id=pk, worker="w")
                written_mid_run |= {k for k in _objects(bucket) if k.endswith(".statistics")}
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    assert len(written_mid_run) == 6  # each partition's statistics went to the bucket
    remaining = _objects(bucket)
    assert not any(key.endswith(".statistics") for key in remaining)  # and were deleted at the end
    assert run.drift_report_file.name in remaining
    assert not any(p.is_file() for p in media_root.rglob("*"))
    on_s3 = sorted(MetricResult.objects.filter(run=run).values_list("metric", "attribute", "group", "column", "value"))
    settings.DATASET_PARTITION_ROWS = 1_000_000
    local = _local_audit(team, model_version, media_root)  # one partition each on disk
    # The same figures; sums of floats over three partitions may differ from one chunk's in the last bits.
    assert [m[:4] for m in on_s3] == [m[:4] for m in local] and len(local) > 50
    for ours, theirs in zip(on_s3, local, strict=True):
        assert ours[4] == theirs[4] or math.isclose(ours[4], theirs[4], rel_tol=1e-12, abs_tol=1e-15), ours
