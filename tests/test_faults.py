"""Faults, caused on purpose against the real services: a worker SIGKILLed mid-audit, Redis restarted with audits
queued, PostgreSQL restarted under a running web process and worker, and 100 audits submitted at once.

Workers and the web process run as separate processes (celery, gunicorn) against the test database and the
test broker, as in production. The test itself plays Celery beat: it calls the sweeper every second, which
hands back runs whose lease lapsed and re-sends runs whose message was lost. What must hold: every run
finishes exactly once (one claim that wrote results, one `audit_run.succeeded` event), with the result an
undisturbed run gives.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from audits.models import AuditRun, MetricResult
from audits.services import audit_run_create, audit_run_execute, audit_runs_sweep
from governance.celery import app
from governance.models import GovernanceEvent
from tests.conftest import client_for, clinical_frame, upload_frame

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Services:
    """Worker and web processes of the service, started against the test database and broker."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "SECRET_KEY": "test-secret-key-not-for-production",
            "DEBUG": "1",
            # Persistent connections, as in production: they must survive a database restart too.
            "DB_CONN_MAX_AGE": "60",
            # Short lease and redelivery, so that the test need not wait 15 minutes for a lost worker.
            "AUDIT_RUN_LEASE_SECONDS": "6",
            "CELERY_VISIBILITY_TIMEOUT": "10",
        }

    def _start(self, name: str, command: list[str]) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def worker(self, name: str, concurrency: int = 1) -> subprocess.Popen[bytes]:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "governance",
            "worker",
            "-Q",
            "audits,celery",
            "--pool=prefork",
        ]
        command += [f"--concurrency={concurrency}", "-n", f"{name}@%h", "--loglevel=INFO", "--without-mingle"]
        return self._start(name, command)

    def web(self, port: int) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "gunicorn", "governance.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"]
        process = self._start("web", command)
        _wait_for(lambda: _port_open(port), 60, "gunicorn to listen")
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and its children (the worker's pool): no chance to clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill(process)


@pytest.fixture
def services(tmp_path, media_root) -> Iterator[Services]:
    app.control.purge()
    running = Services(tmp_path)
    yield running
    running.stop_all()
    # Anything the processes printed is kept with the test artifacts.
    artifacts = ROOT / "var" / "test-artifacts" / "faults"
    artifacts.mkdir(parents=True, exist_ok=True)
    for log in tmp_path.glob("*.log"):
        shutil.copy(log, artifacts / log.name)


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"waited {timeout} s for {what}")


def _sweep_until_finished(runs: list[AuditRun], settings_fixture: Any, timeout: float = 240) -> None:
    """Play beat: the sweeper every second until every run has finished."""
    settings_fixture.AUDIT_RUN_REDISPATCH_AFTER_SECONDS = 3
    ids = [run.pk for run in runs]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            audit_runs_sweep()
        except Exception:  # the broker or database may still be coming back
            connection.close()
        finished = AuditRun.objects.filter(pk__in=ids, status__in=AuditRun.FINISHED).count()
        if finished == len(ids):
            return
        time.sleep(1)
    states = list(AuditRun.objects.filter(pk__in=ids).values_list("pk", "status", "progress", "attempt"))
    pytest.fail(f"not all runs finished: {states}")


def _outcome(run: AuditRun) -> tuple[Any, ...]:
    metrics = sorted(
        MetricResult.objects.filter(run=run).values_list("category", "metric", "attribute", "group", "column", "value")
    )
    findings = sorted(run.findings.values_list("severity", "message"))
    return run.verdict, tuple(metrics), tuple(findings)


def _finished_once(run: AuditRun) -> None:
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    events = GovernanceEvent.objects.filter(object_type="audits.auditrun", object_id=str(run.pk))
    assert events.filter(action="audit_run.succeeded").count() == 1
    assert not events.filter(action="audit_run.failed").exists()


def test_a_worker_killed_mid_audit_is_replaced_and_the_run_finishes_once_with_the_same_result(
    team, model_version, services, settings
) -> None:
    # Large enough that Evidently's report takes seconds: the worker is killed while it works.
    current = upload_frame(team, clinical_frame(300_000, seed=21), name="current")
    reference = upload_frame(team, clinical_frame(300_000, seed=22, shift=0.3), name="reference", kind="reference")
    first = services.worker("doomed")
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    _wait_for(lambda: AuditRun.objects.get(pk=run.pk).status == "running", 120, "the worker to claim the run")
    time.sleep(0.5)
    services.kill(first)
    run.refresh_from_db()
    assert run.status == "running", "the run finished before the worker was killed: the test proves nothing"

    services.worker("replacement")
    _sweep_until_finished([run], settings)
    _finished_once(run)
    run.refresh_from_db()
    assert run.attempt >= 2 and "replacement@" in run.worker  # claimed again, by the new worker

    undisturbed = audit_run_create(
        model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner
    )
    audit_run_execute(run_id=undisturbed.pk, worker="in-process")
    undisturbed.refresh_from_db()
    assert _outcome(run) == _outcome(undisturbed)
    assert MetricResult.objects.filter(run=run).count() == MetricResult.objects.filter(run=undisturbed).count() > 50


def _redis(*args: str) -> None:
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", *args], check=False, capture_output=True)


def _redis_start() -> None:
    Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
    Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
    # The command the machine's own start-up uses (see the env docs): Redis keeps nothing on disk.
    command = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", ""]
    subprocess.run([*command, "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"])
    _wait_for(lambda: _port_open(6379), 30, "Redis to come back")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the machine's redis-server")
def test_audits_queued_when_redis_restarts_are_none_lost(team, model_version, services, settings) -> None:
    data = upload_frame(team, clinical_frame(400, seed=23), name="small")
    client = client_for(team.owner, team.organization)
    body = {"model_version": model_version.pk, "dataset": data.pk}
    # Three audits queued in Redis, no worker yet; Redis then stops, and keeps nothing.
    queued = [client.post("/api/v1/audits/", body, format="json") for _ in range(3)]
    _redis("shutdown", "nosave")
    _wait_for(lambda: not _port_open(6379), 30, "Redis to stop")
    try:
        # Two more while the broker is down: accepted all the same, kept in the database.
        queued += [client.post("/api/v1/audits/", body, format="json") for _ in range(2)]
    finally:
        _redis_start()
    assert [r.status_code for r in queued] == [201] * 5
    runs = [AuditRun.objects.get(pk=r.json()["id"]) for r in queued]
    assert all(run.status == "queued" for run in runs)

    services.worker("after-restart")
    _sweep_until_finished(runs, settings)
    for run in runs:
        _finished_once(run)
    assert len({_outcome(run) for run in runs}) == 1


def _pg_restart() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"], check=True)


@pytest.mark.skipif(not Path("/etc/postgresql").is_dir() or os.geteuid() != 0, reason="needs the machine's cluster")
def test_web_and_worker_recover_from_a_postgresql_restart_on_their_own(team, model_version, services, settings) -> None:
    import httpx

    data = upload_frame(team, clinical_frame(400, seed=24), name="small")
    client = client_for(team.owner, team.organization)
    token = client._credentials["HTTP_AUTHORIZATION"]
    port = _free_port()
    services.web(port)
    services.worker("steady")
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": token}, timeout=30)
    body = {"model_version": model_version.pk, "dataset": data.pk}
    before = api.post("/audits/", json=body)
    assert before.status_code == 201
    before_run = AuditRun.objects.get(pk=before.json()["id"])
    _sweep_until_finished([before_run], settings)
    _finished_once(before_run)

    # A long audit is running when the database restarts.
    current = upload_frame(team, clinical_frame(300_000, seed=26), name="current")
    reference = upload_frame(team, clinical_frame(300_000, seed=27, shift=0.3), name="reference", kind="reference")
    caught = api.post("/audits/", json={**body, "dataset": current.pk, "reference_dataset": reference.pk})
    caught_run = AuditRun.objects.get(pk=caught.json()["id"])
    _wait_for(lambda: AuditRun.objects.get(pk=caught_run.pk).status == "running", 120, "the long audit to start")
    time.sleep(0.3)

    _pg_restart()
    connection.close()  # this test's own connection was cut too

    # Nobody restarts the web process or the worker: they serve and audit again by themselves.
    _wait_for(lambda: api.get("/models/").status_code == 200, 60, "the web process to serve again")
    after = api.post("/audits/", json=body)
    assert after.status_code == 201, after.text
    after_run = AuditRun.objects.get(pk=after.json()["id"])
    _sweep_until_finished([after_run, caught_run], settings)
    _finished_once(after_run)
    assert _outcome(after_run) == _outcome(before_run)
    # The audit the restart interrupted is not failed for it: it runs again and finishes once.
    _finished_once(caught_run)
    assert all(process.poll() is None for process in services.processes)


def test_a_hundred_audits_submitted_at_once_each_finish_exactly_once(team, model_version, services, settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    data = upload_frame(team, clinical_frame(300, seed=25), name="small")
    token = client_for(team.owner, team.organization)._credentials["HTTP_AUTHORIZATION"]
    services.worker("first", concurrency=1)
    services.worker("second", concurrency=1)
    port = _free_port()
    services.web(port)
    import httpx

    def submit(_: int) -> int:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": token}) as api:
            answer = api.post("/audits/", json={"model_version": model_version.pk, "dataset": data.pk}, timeout=60)
            assert answer.status_code == 201, answer.text
            return answer.json()["id"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(submit, range(100)))
    assert len(set(ids)) == 100
    runs = list(AuditRun.objects.filter(pk__in=ids))
    _sweep_until_finished(runs, settings, timeout=600)
    outcomes = set()
    for run in runs:
        _finished_once(run)
        assert run.attempt == 1
        outcomes.add(_outcome(run))
    assert len(outcomes) == 1
    workers = {run.worker.split(":", 1)[1].split("@")[0] for run in AuditRun.objects.filter(pk__in=ids)}
    assert workers == {"first", "second"}  # both workers took a share


def test_a_worker_killed_mid_partition_costs_one_partition_and_the_run_finishes_once_with_the_same_result(
    team, model_version, services, settings
) -> None:
    from audits.models import RunTask

    settings.DATASET_PARTITION_ROWS = 100_000  # one chunk each: the fanned-out sums are the single pass's
    current = upload_frame(team, clinical_frame(400_000, seed=31), name="current")
    reference = upload_frame(team, clinical_frame(200_000, seed=32, shift=0.3), name="reference", kind="reference")
    assert current.partition_count == 4 and reference.partition_count == 2
    first = services.worker("doomed")
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    in_flight = RunTask.objects.filter(run=run, stage="data", status="running")
    _wait_for(in_flight.exists, 180, "the worker to start on a data partition")
    killed = in_flight.values_list("index", flat=True).first()
    services.kill(first)
    assert RunTask.objects.get(run=run, stage="data", index=killed).status == "running"

    services.worker("replacement")
    _sweep_until_finished([run], settings)
    _finished_once(run)
    run.refresh_from_db()
    assert run.attempt == 1  # the run was never started over: only the lost partition was
    lost = RunTask.objects.get(run=run, stage="data", index=killed)
    assert lost.status == "done" and lost.tries >= 2 and "replacement@" in lost.worker
    finished_by_the_doomed = RunTask.objects.filter(run=run, status="done", tries=1, worker__contains="doomed@")
    assert finished_by_the_doomed.exists()  # their work was kept, not redone

    settings.AUDIT_FAN_OUT = False
    single = audit_run_create(
        model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner
    )
    audit_run_execute(run_id=single.pk, worker="in-process")
    single.refresh_from_db()
    assert _outcome(run) == _outcome(single)
    assert run.result == single.result
