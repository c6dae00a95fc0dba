"""A run over partitioned data, spread over the audit workers: one task per partition, then one merge.

The tasks of an attempt are a chord whose counter lives in PostgreSQL rather than in a result
backend, because the database is the truth about every run (ARCHITECTURE.md) and the broker may
forget (Redis restarted empty is a tested fault):

1. `audit_run_fan_out`, in the run's own task: plan the pass (engines.audit.AuditPlan, from
   schemas and footers), store the plan on the run and create the tasks, one per partition of
   the reference (if any), one per partition of the audited data, and one merge; send the first
   stage's tasks, partition i to queue i mod len(AUDIT_PARTITION_QUEUES).
2. A partition task claims its row with a conditional UPDATE and a lease, reads its partition
   chunk by chunk into the engines' sufficient statistics, stores them (pickle, with their sha256
   in the row: a file whose bytes changed is refused before it is read) and marks itself done.
   Data partitions first merge the reference's statistics, which give quality its ranges.
3. With a reference, one more task draws the samples Evidently's interactive report is rendered
   from and renders it, beside the partitions: it needs rows, not statistics.
4. Under a lock on the run, the last reference partition to finish queues the data partitions,
   and the last task but the merge queues the merge.
5. The merge loads every data partition's statistics in partition order, checks that they cover
   every row, and computes metrics, intervals, tests, findings and the verdict with the same
   function a single pass uses (engines.audit.audit_report); the run's results are written once,
   as a single pass writes them.

A task that raises is tried again after AUDIT_TASK_RETRY_SECONDS; a task whose worker is lost
is handed back by the sweeper once its lease lapses. After AUDIT_TASK_MAX_TRIES tries the run
fails with an error naming the partition. Bad data (TableError) fails at once. Statistics are
intermediate: they are deleted when the run finishes, and never written as a result.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from audits.engines.audit import (
    AuditPlan,
    DataStatistics,
    ReferenceStatistics,
    data_statistics,
    reference_statistics,
)
from audits.engines.errors import TableError
from audits.engines.quality import merge_ranges, reference_ranges
from audits.engines.tables import iter_parquet_chunks
from audits.models import AuditRun, RunTask
from audits.services.reading import (
    audit_plan,
    dataset_partitions,
    describe_partition,
    evidently_sample,
    open_partitions,
    reference_columns,
    run_report,
)

logger = logging.getLogger(__name__)

Stage, Status = RunTask.Stage, RunTask.Status


class TaskLost(Exception):
    """This try no longer holds its task (its lease lapsed and another worker took it, or the run ended)."""


def audit_run_fan_out(run: AuditRun, attempt: int) -> None:
    """Plan a claimed run over partitioned data and send one task per partition of its first stage."""
    with ExitStack() as files:
        data_partitions = dataset_partitions(run.dataset)
        reference_partitions = dataset_partitions(run.reference_dataset) if run.reference_dataset else []
        try:
            plan = audit_plan(
                run, open_partitions(files, data_partitions), open_partitions(files, reference_partitions, "reference")
            )
        except (OperationalError, InterfaceError):
            raise  # the database went away: the run's lease and the sweeper take it from here
        except Exception as exc:
            from audits.services.execution import _readable_error, audit_run_fail

            audit_run_fail(run, attempt, _readable_error(exc))
            return
    first = Stage.REFERENCE if reference_partitions else Stage.DATA
    now = timezone.now()
    tasks = [
        RunTask(run=run, attempt=attempt, stage=Stage.REFERENCE, index=p.index, partition=p, status=Status.QUEUED)
        for p in reference_partitions
    ]
    tasks += [
        RunTask(
            run=run,
            attempt=attempt,
            stage=Stage.DATA,
            index=p.index,
            partition=p,
            status=Status.QUEUED if first == Stage.DATA else Status.WAITING,
        )
        for p in data_partitions
    ]
    if reference_partitions:
        tasks.append(RunTask(run=run, attempt=attempt, stage=Stage.REPORT, index=0, status=Status.QUEUED))
    tasks.append(RunTask(run=run, attempt=attempt, stage=Stage.MERGE, index=0))
    for task in tasks:
        if task.status == Status.QUEUED:
            task.dispatched_at = now
    with transaction.atomic():
        locked = AuditRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != AuditRun.Status.RUNNING or locked.attempt != attempt:
            return
        created = RunTask.objects.bulk_create(tasks)
        locked.plan = plan.to_dict()
        locked.lease_expires_at = None  # the tasks hold the leases now
        locked.progress = _progress_text(
            first, 0, len(reference_partitions if first == Stage.REFERENCE else data_partitions)
        )
        locked.rows_read = 0
        locked.save(update_fields=["plan", "lease_expires_at", "progress", "rows_read"])
        queued = [t.pk for t in created if t.status == Status.QUEUED]
        transaction.on_commit(lambda: run_tasks_send(queued))
    logger.info(
        "audit run %s: fanned out over %s reference and %s data partitions",
        run.pk,
        len(reference_partitions),
        len(data_partitions),
    )


def _progress_text(stage: str, done: int, total: int) -> str:
    if stage == Stage.REFERENCE:
        return f"reading the reference: {done} of {total} partitions done"
    if stage == Stage.DATA:
        return f"reading the data: {done} of {total} partitions done"
    return "merging the partitions' statistics"


def run_tasks_send(task_ids: list[int], *, countdown: float | None = None) -> None:
    """Send tasks to the audit workers by id; safe to repeat, because only one try can claim a task."""
    from kombu.exceptions import OperationalError as BrokerError

    from audits.tasks import run_audit_task

    queues = settings.AUDIT_PARTITION_QUEUES or ["audits"]
    for pk, stage, index in RunTask.objects.filter(pk__in=task_ids).values_list("pk", "stage", "index"):
        queue = queues[0] if stage == Stage.MERGE else queues[index % len(queues)]
        try:
            run_audit_task.apply_async((pk,), queue=queue, countdown=countdown)
        except BrokerError:
            # The task stays queued in the database; the sweeper sends it again once the broker is back.
            logger.warning("run task %s: broker unavailable, left for the sweeper", pk)


def _claim(task_id: int, worker: str) -> RunTask | None:
    """Take a queued task, or one whose lease lapsed, of a run still running under the task's attempt."""
    now = timezone.now()
    claimable = RunTask.objects.filter(
        Q(status=Status.QUEUED) | Q(status=Status.RUNNING, lease_expires_at__lt=now),
        pk=task_id,
        run__status=AuditRun.Status.RUNNING,
        run__attempt=F("attempt"),
    )
    claimed = claimable.update(
        status=Status.RUNNING,
        tries=F("tries") + 1,
        worker=worker[:200],
        started_at=now,
        lease_expires_at=now + timedelta(seconds=settings.AUDIT_RUN_LEASE_SECONDS),
    )
    if claimed != 1:
        return None
    return RunTask.objects.select_related(
        "run__dataset",
        "run__reference_dataset",
        "run__organization",
        "run__model_version__ai_model",
        "partition__dataset",
    ).get(pk=task_id)


def _renewer(task: RunTask) -> Any:
    """A progress callback that extends the task's lease at most once a second, and stops a lost try."""
    last = [0.0]

    def renew(step: str, rows: int) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0:
            return
        last[0] = now
        held = RunTask.objects.filter(pk=task.pk, status=Status.RUNNING, tries=task.tries).update(
            lease_expires_at=timezone.now() + timedelta(seconds=settings.AUDIT_RUN_LEASE_SECONDS), rows=rows
        )
        if not held:
            raise TaskLost(f"{task} was taken over after its lease lapsed")

    return renew


def audit_run_task_execute(*, task_id: int, worker: str) -> None:
    """Claim one task of a partitioned run and carry it out: a partition's statistics, or the merge."""
    task = _claim(task_id, worker)
    if task is None:
        logger.info("run task %s: not claimed (taken, done, or its run ended)", task_id)
        return
    started = time.monotonic()
    try:
        if task.stage == Stage.MERGE:
            _merge(task, started)
            return
        if task.stage == Stage.REPORT:
            name, digest, rows = _render_report(task)
        else:
            statistics = _partition_statistics(task)
            name, digest = _store(task, statistics)
            rows = statistics.quality.rows
    except (OperationalError, InterfaceError):
        logger.warning("run task %s: database unavailable; left for the sweeper to retry", task_id)
        raise
    except TaskLost as exc:
        logger.warning("run task %s: %s", task_id, exc)
        return
    except Exception as exc:
        _failed(task, exc)
        return
    _complete(task, name, digest, rows, time.monotonic() - started)


def _partition_statistics(task: RunTask) -> ReferenceStatistics | DataStatistics:
    run = task.run
    plan = AuditPlan.from_dict(run.plan or {})
    assert task.partition is not None
    renew = _renewer(task)
    with task.partition.file.open("rb") as stored:
        if task.stage == Stage.REFERENCE:
            chunks = iter_parquet_chunks(stored, columns=reference_columns(run, plan.roles))
            statistics = reference_statistics(chunks, plan, on_progress=renew)
            # What the data partitions need of the reference: its numeric ranges (finite, so JSON holds them).
            ranges = reference_ranges(statistics.quality)
            RunTask.objects.filter(pk=task.pk).update(details={"ranges": {c: list(r) for c, r in ranges.items()}})
            return statistics
        bounds: dict[str, tuple[float, float]] | None = None
        if run.reference_dataset_id:
            parts = RunTask.objects.filter(run_id=run.pk, attempt=task.attempt, stage=Stage.REFERENCE)
            bounds = merge_ranges(
                {c: (low, high) for c, (low, high) in part["ranges"].items()}
                for part in parts.values_list("details", flat=True)
            )
        chunks = iter_parquet_chunks(stored, columns=plan.roles.all_columns())
        return data_statistics(chunks, plan, ranges=bounds, drift=bool(run.reference_dataset_id), on_progress=renew)


def _render_report(task: RunTask) -> tuple[str, str, int]:
    """Evidently's interactive drift report, from seeded samples of both datasets' partitions."""
    from audits.engines.evidently_report import drift_snapshot

    run = task.run
    plan = AuditPlan.from_dict(run.plan or {})
    assert run.reference_dataset is not None
    with ExitStack() as files:
        data_partitions = dataset_partitions(run.dataset)
        reference_partitions = dataset_partitions(run.reference_dataset)
        reference_sample, current_sample = evidently_sample(
            run,
            plan,
            (open_partitions(files, data_partitions), data_partitions),
            (open_partitions(files, reference_partitions, "reference"), reference_partitions),
        )
    _renewer(task)("rendering Evidently's drift report", 0)
    snapshot = drift_snapshot(reference_sample, current_sample, numerical=plan.numerical, categorical=plan.categorical)
    html = snapshot.get_html_str(as_iframe=False).encode("utf-8")
    name = default_storage.save(
        f"runs/{run.organization_id}/{run.pk}/attempt-{task.attempt}-try-{task.tries}-drift-report.html",
        ContentFile(html),
    )
    RunTask.objects.filter(pk=task.pk).update(
        details={"reference": len(reference_sample), "current": len(current_sample)}
    )
    return name, hashlib.sha256(html).hexdigest(), len(current_sample)


def _store(task: RunTask, statistics: Any) -> tuple[str, str]:
    payload = pickle.dumps(statistics, protocol=pickle.HIGHEST_PROTOCOL)
    name = default_storage.save(
        f"runs/{task.run.organization_id}/{task.run_id}/attempt-{task.attempt}/"
        f"{task.stage}-{task.index:05d}-try-{task.tries}.statistics",
        ContentFile(payload),
    )
    return name, hashlib.sha256(payload).hexdigest()


def _merged(task: RunTask, stage: str, start: Any) -> Any:
    """The statistics of every done task of a stage of the task's attempt, merged in partition order."""
    merged = start
    for part in RunTask.objects.filter(run_id=task.run_id, attempt=task.attempt, stage=stage).order_by("index"):
        if part.status != Status.DONE:
            raise RuntimeError(f"{part} is {part.status}, not done: its statistics cannot be merged yet")
        with default_storage.open(part.statistics_file, "rb") as stored:
            payload = stored.read()
        if hashlib.sha256(payload).hexdigest() != part.statistics_sha256:
            raise RuntimeError(f"the statistics of {part} changed after they were written (sha256 mismatch)")
        # Only bytes this service wrote, as the sha256 in the database proves, are unpickled.
        merged = merged.merge(pickle.loads(payload))  # noqa: S301
    return merged


def _complete(task: RunTask, name: str, digest: str, rows: int, seconds: float) -> None:
    """Mark the try done if it still holds the task; the last reference partition queues the data
    partitions, and the last task but the merge queues the merge."""
    with transaction.atomic():
        run = AuditRun.objects.select_for_update().get(pk=task.run_id)
        done = RunTask.objects.filter(pk=task.pk, status=Status.RUNNING, tries=task.tries).update(
            status=Status.DONE,
            finished_at=timezone.now(),
            seconds=seconds,
            rows=rows,
            statistics_file=name,
            statistics_sha256=digest,
            lease_expires_at=None,
        )
        if not done or run.status != AuditRun.Status.RUNNING or run.attempt != task.attempt:
            logger.warning("run task %s: try %s lost its claim; its statistics are discarded", task.pk, task.tries)
            transaction.on_commit(lambda: default_storage.delete(name))
            return
        tasks = RunTask.objects.filter(run=run, attempt=task.attempt)
        if task.stage in (Stage.REFERENCE, Stage.DATA):
            stage = tasks.filter(stage=task.stage)
            finished = stage.filter(status=Status.DONE)
            count = finished.count()
            run.progress = _progress_text(task.stage, count, stage.count())
            run.rows_read = finished.aggregate(rows=Sum("rows"))["rows"] or 0
            run.save(update_fields=["progress", "rows_read"])
        following = tasks.none()
        if (
            task.stage == Stage.REFERENCE
            and not tasks.filter(stage=Stage.REFERENCE).exclude(status=Status.DONE).exists()
        ):
            following = tasks.filter(stage=Stage.DATA, status=Status.WAITING)
        elif not tasks.exclude(stage=Stage.MERGE).exclude(status=Status.DONE).exists():
            following = tasks.filter(stage=Stage.MERGE, status=Status.WAITING)
            run.progress = _progress_text(Stage.MERGE, 0, 1)
            run.save(update_fields=["progress"])
        ids = list(following.values_list("pk", flat=True))
        if ids:
            RunTask.objects.filter(pk__in=ids).update(status=Status.QUEUED, dispatched_at=timezone.now())
            transaction.on_commit(lambda: run_tasks_send(ids))
    logger.info("run task %s: done in %.1f s (%s rows)", task.pk, seconds, rows)


def _failed(task: RunTask, exc: Exception) -> None:
    """Try the task again later, or, past its tries or on bad data, fail the run naming the partition."""
    from audits.services.execution import _readable_error, audit_run_fail

    error = _readable_error(exc)
    if isinstance(exc, FileNotFoundError):
        error = "its file is missing from storage"
    which = describe_partition(task.partition, task.stage)
    RunTask.objects.filter(pk=task.pk).update(last_error=error)
    if isinstance(exc, TableError):  # the data itself: another try would read the same bytes
        audit_run_fail(task.run, task.attempt, f"{which}: {error}")
        return
    if task.tries >= settings.AUDIT_TASK_MAX_TRIES:
        audit_run_fail(task.run, task.attempt, f"{which} failed after {task.tries} tries; the last error: {error}")
        logger.error("run task %s: failed after %s tries with %s", task.pk, task.tries, type(exc).__name__)
        return
    retried = RunTask.objects.filter(pk=task.pk, status=Status.RUNNING, tries=task.tries).update(
        status=Status.QUEUED, lease_expires_at=None, dispatched_at=timezone.now()
    )
    if retried:
        logger.warning("run task %s: try %s failed with %s; tried again", task.pk, task.tries, type(exc).__name__)
        run_tasks_send([task.pk], countdown=settings.AUDIT_TASK_RETRY_SECONDS)


def _merge(task: RunTask, started: float) -> None:
    """Compute the run's results from every partition's statistics and store them, once."""
    from audits.engines.findings import restrict_to_checks
    from audits.services.execution import finish_succeeded

    run = task.run
    plan = AuditPlan.from_dict(run.plan or {})
    renew = _renewer(task)
    reference = _merged(task, Stage.REFERENCE, ReferenceStatistics()) if run.reference_dataset else None
    data = _merged(task, Stage.DATA, DataStatistics())
    # No partial result: the statistics must cover every row of both datasets.
    if data.quality.rows != run.dataset.row_count:
        raise RuntimeError(f"the partitions' statistics cover {data.quality.rows} of {run.dataset.row_count} rows")
    if reference is not None and run.reference_dataset and reference.quality.rows != run.reference_dataset.row_count:
        raise RuntimeError(
            f"the reference partitions' statistics cover {reference.quality.rows} of "
            f"{run.reference_dataset.row_count} rows"
        )
    renew("merging", data.quality.rows)
    result, _ = run_report(run, plan, data, reference, None)
    report_name = ""
    report = RunTask.objects.filter(run_id=run.pk, attempt=task.attempt, stage=Stage.REPORT).first()
    if report is not None and result.get("drift") is not None:
        report_name = report.statistics_file
        result["drift"]["evidently_report_rows"] = report.details  # as a single pass notes its sample
    result = restrict_to_checks(result, run.checks)
    finish_succeeded(run, task.attempt, result, None, report_name=report_name)
    RunTask.objects.filter(pk=task.pk, status=Status.RUNNING, tries=task.tries).update(
        status=Status.DONE,
        finished_at=timezone.now(),
        seconds=time.monotonic() - started,
        rows=data.quality.rows,
        lease_expires_at=None,
    )


def run_statistics_discard(run_id: int) -> None:
    """Delete the intermediate files of a finished run's tasks: its results, and the report it cites, are kept."""
    kept = AuditRun.objects.filter(pk=run_id).values_list("drift_report_file", flat=True).first()
    names = RunTask.objects.filter(run_id=run_id).exclude(statistics_file="").values_list("statistics_file", flat=True)
    for name in names:
        if name != kept:
            default_storage.delete(name)


def run_tasks_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Hand back tasks whose lease lapsed and re-send queued tasks whose message may be lost.

    1. A running task past its lease is queued again, unless it has been tried AUDIT_TASK_MAX_TRIES
       times: its run then fails, naming the partition.
    2. A queued task not claimed within AUDIT_RUN_REDISPATCH_AFTER_SECONDS is sent again.
    Tasks of runs that finished, or of attempts that are no longer the run's, are left alone.
    """
    from audits.services.execution import audit_run_fail

    now = now or timezone.now()
    live = RunTask.objects.filter(run__status=AuditRun.Status.RUNNING, run__attempt=F("attempt"))
    requeued = given_up = redispatched = 0
    lapsed = live.filter(status=Status.RUNNING, lease_expires_at__lt=now).select_related("run", "partition__dataset")
    for task in lapsed:
        if task.tries >= settings.AUDIT_TASK_MAX_TRIES:
            given_up += 1
            which = describe_partition(task.partition, task.stage)
            audit_run_fail(
                task.run,
                task.attempt,
                f"{which} was interrupted {task.tries} times (its worker was lost or stopped); "
                "start the audit again once the workers are healthy",
            )
        elif RunTask.objects.filter(
            pk=task.pk, status=Status.RUNNING, tries=task.tries, lease_expires_at__lt=now
        ).update(status=Status.QUEUED, lease_expires_at=None, dispatched_at=now):
            requeued += 1
            logger.warning("run task %s: lease lapsed, queued again", task.pk)
            run_tasks_send([task.pk])
    stale = now - timedelta(seconds=settings.AUDIT_RUN_REDISPATCH_AFTER_SECONDS)
    for pk in live.filter(status=Status.QUEUED, dispatched_at__lt=stale).values_list("pk", flat=True):
        if RunTask.objects.filter(pk=pk, status=Status.QUEUED, dispatched_at__lt=stale).update(dispatched_at=now):
            run_tasks_send([pk])
            redispatched += 1
    return {"tasks_requeued": requeued, "tasks_redispatched": redispatched, "tasks_given_up": given_up}
