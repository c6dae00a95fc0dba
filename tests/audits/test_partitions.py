"""Datasets stored in bounded partitions, and audits fanned out over them: one task per partition, then a merge.

The fanned-out answer is checked against the single pass (AUDIT_FAN_OUT off) over the same partitions,
and the faults against the service's own guarantees: retries name the partition, nothing partial is stored,
a lost task or merge is handed back by the sweeper.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.storage import default_storage

from audits.models import AuditRun, MetricResult, RunTask
from audits.services import audit_run_create, audit_run_execute, audit_runs_sweep
from audits.services.partitions import audit_run_task_execute
from governance.models import Dataset, GovernanceEvent
from governance.services import dataset_upload
from tests.conftest import CLINICAL_ROLES, client_for, clinical_frame, upload_frame, wait_for_run

pytestmark = pytest.mark.django_db
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)  # a lease that lapsed: its worker died


@pytest.fixture
def small_partitions(settings: Any) -> None:
    """Partitions of 1,000 rows, so that a test-sized dataset has several."""
    settings.DATASET_PARTITION_ROWS = 1000
    settings.DATASET_PARQUET_ROW_GROUP_SIZE = 500


def _read_back(dataset: Dataset) -> pd.DataFrame:
    tables = []
    for partition in dataset.partitions.order_by("index"):
        with partition.file.open("rb") as stored:
            tables.append(pq.read_table(stored))
    return pa.concat_tables(tables).to_pandas()


def test_a_large_upload_is_stored_in_bounded_partitions_that_read_back_as_the_upload(
    team, media_root, small_partitions
) -> None:
    frame = clinical_frame(3500, seed=3)
    dataset = upload_frame(team, frame, name="big")
    parts = list(dataset.partitions.order_by("index"))
    assert dataset.partition_count == len(parts) == 4
    assert [p.row_count for p in parts] == [1000, 1000, 1000, 500]
    assert [p.first_row for p in parts] == [0, 1000, 2000, 3000]
    assert parts[0].file.name == dataset.file.name
    assert dataset.size_bytes == sum(p.size_bytes for p in parts)
    for part in parts:
        with part.file.open("rb") as stored:
            assert hashlib.sha256(stored.read()).hexdigest() == part.sha256
            stored.seek(0)
            assert pq.ParquetFile(stored).metadata.num_rows == part.row_count
    # The dataset's sha256, by hand: that of its partitions' hex digests, one per line.
    by_hand = hashlib.sha256("".join(p.sha256 + "\n" for p in parts).encode()).hexdigest()
    assert dataset.sha256 == by_hand
    pd.testing.assert_frame_equal(_read_back(dataset), frame, check_dtype=False)
    event = GovernanceEvent.objects.get(action="dataset.uploaded", object_id=str(dataset.pk))
    assert event.after["partitions"] == [p.sha256 for p in parts]
    # The API lists them, so that anyone holding the files can check each one.
    shown = client_for(team.viewer, team.organization, scope="read").get(f"/api/v1/datasets/{dataset.pk}/").json()
    assert shown["partition_count"] == 4 and shown["sha256"] == by_hand
    assert [(p["index"], p["first_row"], p["row_count"], p["sha256"]) for p in shown["partitions"]] == [
        (p.index, p.first_row, p.row_count, p.sha256) for p in parts
    ]


def test_a_partition_holds_about_dataset_partition_bytes_in_whole_row_groups(team, media_root, settings) -> None:
    settings.DATASET_PARQUET_ROW_GROUP_SIZE = 100
    settings.DATASET_PARTITION_BYTES = 200_000  # a clinical row is about 100 bytes in memory
    dataset = upload_frame(team, clinical_frame(5000, seed=4), name="wide")
    rows = [p.row_count for p in dataset.partitions.order_by("index")]
    assert dataset.partition_count > 1 and sum(rows) == 5000
    assert all(r % 100 == 0 for r in rows[:-1])  # whole row groups: chunks split where partitions do
    table = pa.Table.from_pandas(clinical_frame(5000, seed=4))
    assert rows[0] * table.nbytes / table.num_rows <= 200_000


def test_a_small_upload_stays_one_partition_with_the_files_own_sha256(team, media_root) -> None:
    dataset = upload_frame(team, clinical_frame(300), name="small")
    (part,) = dataset.partitions.all()
    assert dataset.partition_count == 1 and part.sha256 == dataset.sha256 and part.row_count == 300


@pytest.mark.parametrize("writer", ["file", "stream"])
def test_arrow_ipc_uploads_are_read_like_parquet(team, media_root, writer: str) -> None:
    frame = clinical_frame(400, seed=5)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    open_writer = pa.ipc.new_file if writer == "file" else pa.ipc.new_stream
    with open_writer(sink, table.schema) as out:
        out.write_table(table, max_chunksize=150)
    sink.seek(0)
    dataset = dataset_upload(
        organization=team.organization,
        name=f"arrow {writer}",
        file=sink,
        filename=f"cohort.{'arrow' if writer == 'file' else 'arrows'}",
        column_roles=CLINICAL_ROLES,
        actor=team.owner,
    )
    assert dataset.original_format == "arrow" and dataset.row_count == 400
    pd.testing.assert_frame_equal(_read_back(dataset), frame)


def test_a_broken_arrow_upload_is_refused_naming_the_format(team, media_root) -> None:
    client = client_for(team.owner, team.organization)
    response = client.post(
        "/api/v1/datasets/",
        {
            "organization": "st-elsewhere",
            "name": "x",
            "column_roles": json.dumps(CLINICAL_ROLES),
            "file": _named(b"ARROW1\x00\x00garbage", "x.arrow"),
        },
        format="multipart",
    )
    assert response.status_code == 400
    assert "Arrow IPC" in str(response.json())


def _named(content: bytes, name: str) -> io.BytesIO:
    buffer = io.BytesIO(content)
    buffer.name = name
    return buffer


def _result_of(run: AuditRun) -> tuple[Any, ...]:
    run.refresh_from_db()
    metrics = sorted(
        MetricResult.objects.filter(run=run).values_list(
            "category", "metric", "attribute", "group", "reference_group", "column", "value", "ci_low", "ci_high", "n"
        ),
        key=repr,
    )
    findings = sorted(run.findings.values_list("severity", "message"))
    return run.verdict, metrics, findings


@pytest.fixture
def partitioned_pair(team, media_root, small_partitions) -> tuple[Dataset, Dataset]:
    current = upload_frame(team, clinical_frame(4200, seed=11), name="current")
    reference = upload_frame(team, clinical_frame(2600, seed=12, shift=0.4), name="reference", kind="reference")
    assert current.partition_count == 5 and reference.partition_count == 3
    return current, reference


def _drain(run: AuditRun) -> None:
    """Play the workers in this process: carry out each queued task of the run's attempt in turn."""
    for _ in range(100):
        run.refresh_from_db()
        if run.is_finished:
            return
        queued = RunTask.objects.filter(run=run, attempt=run.attempt, status=RunTask.Status.QUEUED).order_by("pk")
        if not queued.exists():
            return
        for task in queued:
            audit_run_task_execute(task_id=task.pk, worker="in-process")


def test_a_fanned_out_audit_gives_the_single_pass_answer(
    team, model_version, partitioned_pair, settings, django_capture_on_commit_callbacks
) -> None:
    current, reference = partitioned_pair
    settings.AUDIT_FAN_OUT = False
    single = audit_run_create(
        model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner
    )
    audit_run_execute(run_id=single.pk, worker="single")
    settings.AUDIT_FAN_OUT = True
    fanned = audit_run_create(
        model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner
    )
    audit_run_execute(run_id=fanned.pk, worker="coordinator")
    fanned.refresh_from_db()
    assert fanned.status == "running" and fanned.plan is not None and fanned.lease_expires_at is None
    stages = list(RunTask.objects.filter(run=fanned).values_list("stage", "status"))
    assert stages.count(("reference", "queued")) == 3
    assert stages.count(("data", "waiting")) == 5 and stages.count(("merge", "waiting")) == 1
    assert stages.count(("report", "queued")) == 1  # Evidently's report, drawn from samples beside the partitions
    with django_capture_on_commit_callbacks(execute=True):
        _drain(fanned)

    single.refresh_from_db()
    fanned.refresh_from_db()
    assert single.status == fanned.status == "succeeded", (single.error, fanned.error)
    # Partitions fit in one chunk here, so the merge adds the same numbers in the same order: equal.
    assert fanned.result == single.result
    assert _result_of(fanned) == _result_of(single)
    assert len(_result_of(fanned)[1]) > 100
    tasks = RunTask.objects.filter(run=fanned)
    assert set(tasks.values_list("status", flat=True)) == {"done"}
    assert sorted(tasks.filter(stage="data").values_list("rows", flat=True)) == [200, 1000, 1000, 1000, 1000]
    # Intermediate statistics are gone once the run has its results; the report it cites is kept.
    kept = tasks.get(stage="report").statistics_file
    assert fanned.drift_report_file.name == kept
    with fanned.drift_report_file.open("rb") as report:
        assert report.read().lstrip().lower().startswith(b"<!doctype html>")
    gone = [name for name in tasks.exclude(stage="report").values_list("statistics_file", flat=True) if name]
    assert len(gone) == 8 and not any(default_storage.exists(name) for name in gone)
    events = GovernanceEvent.objects.filter(object_type="audits.auditrun", object_id=str(fanned.pk))
    assert events.filter(action="audit_run.succeeded").count() == 1


def test_a_fanned_out_audit_runs_on_a_real_worker(team, model_version, partitioned_pair, live_worker) -> None:
    current, reference = partitioned_pair
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    run = wait_for_run(run, timeout=120)
    assert run.status == "succeeded", run.error
    assert run.result["rows"] == 4200 and run.result["drift"]["reference_rows"] == 2600
    assert RunTask.objects.filter(run=run, status="done").count() == 3 + 5 + 1 + 1  # and the report


def test_a_partition_that_keeps_failing_fails_the_run_naming_it_and_stores_nothing(
    team, model_version, partitioned_pair, settings, django_capture_on_commit_callbacks
) -> None:
    current, reference = partitioned_pair
    settings.AUDIT_TASK_RETRY_SECONDS = 0
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="coordinator")
    lost = current.partitions.get(index=2)
    default_storage.delete(lost.file.name)  # storage lost the object mid-run: every try fails
    with django_capture_on_commit_callbacks(execute=True):
        _drain(run)
    run.refresh_from_db()
    assert run.status == "failed"
    # The partition's task and the report's (which samples every partition) both need the file;
    # whichever runs out of tries first fails the run, naming the partition.
    assert "failed after 3 tries" in run.error, run.error
    assert "partition 3 of 5 (rows 2,001 to 3,000) of the audited dataset 'current'" in run.error
    assert "missing from storage" in run.error
    assert run.result is None and run.verdict == ""
    assert not MetricResult.objects.filter(run=run).exists() and not run.findings.exists()
    assert RunTask.objects.get(run=run, stage="data", index=2).last_error == "its file is missing from storage"
    assert RunTask.objects.get(run=run, stage="merge").status == "waiting"  # never merged
    names = RunTask.objects.filter(run=run).exclude(statistics_file="").values_list("statistics_file", flat=True)
    assert names and not any(default_storage.exists(name) for name in names)


def test_a_partition_that_fails_once_is_retried_and_the_run_succeeds(
    team, model_version, partitioned_pair, settings
) -> None:
    current, reference = partitioned_pair
    settings.AUDIT_TASK_RETRY_SECONDS = 0
    flaky = current.partitions.get(index=1)
    with flaky.file.open("rb") as stored:
        content = stored.read()
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="coordinator")
    default_storage.delete(flaky.file.name)  # unreachable for a moment
    task = RunTask.objects.get(run=run, stage="data", index=1)
    for reference_task in RunTask.objects.filter(run=run, stage="reference"):
        audit_run_task_execute(task_id=reference_task.pk, worker="in-process")
    audit_run_task_execute(task_id=task.pk, worker="in-process")
    task.refresh_from_db()
    assert task.status == "queued" and task.tries == 1 and task.last_error == "its file is missing from storage"
    default_storage.save(flaky.file.name, io.BytesIO(content))  # the object is back
    _drain(run)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    task.refresh_from_db()
    assert task.status == "done" and task.tries == 2


def test_a_partition_that_is_not_parquet_fails_the_run_at_once_naming_it(team, model_version, partitioned_pair) -> None:
    current, reference = partitioned_pair
    broken = reference.partitions.get(index=1)
    default_storage.delete(broken.file.name)
    default_storage.save(broken.file.name, io.BytesIO(b"not parquet at all"))
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="coordinator")
    run.refresh_from_db()
    # The plan reads every partition's footer first: a partition that is not Parquet stops the run there.
    assert run.status == "failed"
    assert run.error.startswith(
        "partition 2 of 3 (rows 1,001 to 2,000) of the reference dataset 'reference' cannot be read as Parquet"
    ), run.error
    assert not RunTask.objects.filter(run=run).exists()


def test_a_lost_task_and_a_lost_merge_are_handed_back_by_the_sweeper(
    team, model_version, partitioned_pair, settings
) -> None:
    current, reference = partitioned_pair
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="coordinator")
    from audits.services.partitions import _claim

    first = RunTask.objects.filter(run=run, stage="reference").order_by("index").first()
    assert _claim(first.pk, "doomed") is not None  # a worker claims it, then dies
    # Its message is redelivered at once (acks_late): the live lease keeps the second delivery off.
    audit_run_task_execute(task_id=first.pk, worker="redelivered")
    first.refresh_from_db()
    assert first.status == "running" and first.worker == "doomed"
    RunTask.objects.filter(pk=first.pk).update(lease_expires_at=LONG_AGO)
    assert audit_runs_sweep()["tasks_requeued"] == 1
    first.refresh_from_db()
    assert first.status == "queued"
    _drain_stage(run, "reference")
    _drain_stage(run, "data")
    assert RunTask.objects.get(run=run, stage="merge").status == "waiting"  # for the report too
    _drain_stage(run, "report")
    merge = RunTask.objects.get(run=run, stage="merge")
    assert merge.status == "queued"
    assert _claim(merge.pk, "doomed") is not None  # the merge's worker dies too
    RunTask.objects.filter(pk=merge.pk).update(lease_expires_at=LONG_AGO)
    run.refresh_from_db()
    assert run.status == "running"  # a fanned-out run has no lease of its own to lapse
    counts = audit_runs_sweep()
    assert counts["tasks_requeued"] == 1 and counts["requeued"] == 0
    _drain(run)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    merge.refresh_from_db()
    assert merge.tries == 2 and run.attempt == 1


def _drain_stage(run: AuditRun, stage: str) -> None:
    for task in RunTask.objects.filter(run=run, stage=stage, status="queued"):
        audit_run_task_execute(task_id=task.pk, worker="in-process")


def test_a_task_lost_too_often_fails_the_run_naming_the_partition(
    team, model_version, partitioned_pair, settings
) -> None:
    current, reference = partitioned_pair
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="coordinator")
    from audits.services.partitions import _claim

    task = RunTask.objects.filter(run=run, stage="reference").order_by("index").last()
    for _ in range(settings.AUDIT_TASK_MAX_TRIES):
        assert _claim(task.pk, "doomed") is not None
        RunTask.objects.filter(pk=task.pk).update(lease_expires_at=LONG_AGO)
        audit_runs_sweep()
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith(
        "partition 3 of 3 (rows 2,001 to 2,600) of the reference dataset 'reference' was interrupted 3 times"
    ), run.error
    assert not MetricResult.objects.filter(run=run).exists()


@pytest.mark.django_db(transaction=True)
def test_partition_tasks_go_to_the_queues_named_in_turn_on_the_real_broker(
    team, model_version, media_root, small_partitions, settings
) -> None:
    import redis as redis_client

    from governance.celery import app

    settings.AUDIT_PARTITION_QUEUES = ["host-a", "host-b"]
    app.control.purge()
    broker = redis_client.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("host-a", "host-b")
    current = upload_frame(team, clinical_frame(3000, seed=13), name="current")
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="coordinator")
    tasks = {t.pk: t.index for t in RunTask.objects.filter(run=run, stage="data")}

    def queued(queue: str) -> list[int]:
        messages = [json.loads(m)["headers"] for m in broker.lrange(queue, 0, -1)]
        assert {m["task"] for m in messages} <= {"audits.tasks.run_audit_task"}
        return sorted(tasks[int(m["argsrepr"].strip("(,)"))] for m in messages)

    assert queued("host-a") == [0, 2] and queued("host-b") == [1]
    broker.delete("host-a", "host-b")
    app.control.purge()


def test_the_reference_ranges_of_the_parts_merge_into_those_of_the_whole() -> None:
    from audits.engines.quality import merge_ranges, quality_statistics, reference_ranges

    assert merge_ranges([{"a": (1.0, 2.0)}, {"a": (-3.0, 1.5), "b": (0.0, 0.0)}, {}]) == {
        "a": (-3.0, 2.0),
        "b": (0.0, 0.0),
    }
    frame = clinical_frame(3000, seed=14)
    frame.loc[:1499, "lactate"] = float("nan")  # a column with no value in the first part
    frame.loc[2000, "age"] = float("inf")  # infinities are not part of a range
    parts = [frame.iloc[:1500], frame.iloc[1500:2200], frame.iloc[2200:]]
    whole = reference_ranges(quality_statistics(frame, hash_rows=False))
    assert merge_ranges(reference_ranges(quality_statistics(p, hash_rows=False)) for p in parts) == whole
    assert whole["age"][1] < float("inf")
