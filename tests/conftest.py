"""Shared fixtures: an organization with an owner, a viewer teammate and an approver, and an outsider
from another organization, so that every API test can check authorization."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pandas as pd
import pytest
from django.utils import timezone

# Property-based tests draw the same examples on every run (main stays green for the same code);
# HYPOTHESIS_PROFILE=explore draws new ones, to look for what the fixed draws miss.
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from audits.services.stream import prediction_batch_upload
from governance import services
from governance.models import ModelVersion, Organization, Role
from tests.data import CLINICAL_ROLES, OUTCOME_ROLES, STREAM_ROLES, clinical_frame, production_frames
from tests.factories import AIModelFactory, MembershipFactory, ModelVersionFactory, OrganizationFactory, UserFactory

hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@dataclass
class Team:
    organization: Organization
    owner: Any
    viewer: Any
    approver: Any
    outsider: Any
    outsider_organization: Organization


@pytest.fixture
def team(db: None) -> Team:
    organization = OrganizationFactory(slug="st-elsewhere", name="St Elsewhere")
    other = OrganizationFactory(slug="county-general", name="County General")
    owner = MembershipFactory(
        organization=organization, role=Role.MODEL_OWNER, user=UserFactory(username="olivia")
    ).user
    viewer = MembershipFactory(organization=organization, role=Role.VIEWER, user=UserFactory(username="victor")).user
    approver = MembershipFactory(organization=organization, role=Role.APPROVER, user=UserFactory(username="ada")).user
    outsider = MembershipFactory(organization=other, role=Role.ADMIN, user=UserFactory(username="oscar")).user
    return Team(organization, owner, viewer, approver, outsider, other)


def client_for(user: Any, organization: Organization, scope: str = "write") -> APIClient:
    """An API client authenticated with a fresh token of the given scope."""
    _, plaintext = services.api_token_create(
        organization=organization, user=user, name=f"{user.username}-{scope}", scope=scope, actor=user
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


@pytest.fixture
def owner_client(team: Team) -> APIClient:
    return client_for(team.owner, team.organization)


@pytest.fixture
def model_version(team: Team) -> Any:
    return ModelVersionFactory(ai_model=AIModelFactory(organization=team.organization))


def csv_upload(frame: pd.DataFrame, name: str = "cohort.csv") -> io.BytesIO:
    buffer = io.BytesIO(frame.to_csv(index=False).encode("utf-8"))
    buffer.name = name
    return buffer


@pytest.fixture
def media_root(tmp_path: Any, settings: Any) -> Iterator[Any]:
    settings.MEDIA_ROOT = tmp_path / "media"
    yield settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def test_settings(settings: Any) -> None:
    # The default hasher is deliberately slow; tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Production serves collected, hashed static files; tests render pages without collectstatic.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Each test starts with no failed sign-in or token attempts counted (the cache is Redis db 14).
    from django.core.cache import cache

    cache.clear()


def upload_frame(
    team: Team,
    frame: Any,
    *,
    name: str,
    roles: dict[str, Any] | None = None,
    kind: str = "evaluation",
    ai_model: Any = None,
):
    """Upload a DataFrame through the service, as the team's owner."""
    return services.dataset_upload(
        organization=team.organization,
        name=name,
        file=csv_upload(frame),
        filename=f"{name}.csv",
        column_roles=roles or CLINICAL_ROLES,
        actor=team.owner,
        kind=kind,
        ai_model=ai_model,
    )


@pytest.fixture
def live_worker(transactional_db: None) -> Iterator[Any]:
    """A real Celery worker, in a thread of this process, consuming from the configured broker (Redis in CI)."""
    from celery.contrib.testing.worker import start_worker

    from governance.celery import app

    app.control.purge()
    with start_worker(
        app,
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=60,
        queues=["audits", "celery"],  # both queues, as the demo's one worker does
    ) as worker:
        yield worker


def wait_for_run(run: Any, *, timeout: float = 300) -> Any:
    """Poll the database, as a client would, until the run is finished or the time is up."""
    import time

    deadline = time.monotonic() + timeout
    run.refresh_from_db()
    while not run.is_finished and time.monotonic() < deadline:
        time.sleep(0.5)
        run.refresh_from_db()
    return run


def run_concurrently(work: Any, count: int) -> list[Any]:
    """Call work() from `count` threads released at once, each on its own database connection; their results."""
    from django.db import connection

    start = threading.Barrier(count)
    results: list[Any] = []

    def call() -> None:
        try:
            start.wait()
            results.append(work())
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


class Receiver:
    """An HTTP server on 127.0.0.1 that answers with the given codes in turn and keeps what it got."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = list(codes)
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.codes.pop(0) if receiver.codes else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/governance"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(codes: list[int] | None = None) -> Receiver:
        made.append(Receiver(codes or []))
        return made[-1]

    yield make
    for r in made:
        r.close()


def deploy_version(version: ModelVersion) -> ModelVersion:
    """Put a version in stage deployed without the lifecycle's steps (tested through model_version_transition)."""
    ModelVersion.objects.filter(pk=version.pk).update(
        stage=ModelVersion.Stage.DEPLOYED, stage_changed_at=timezone.now()
    )
    version.refresh_from_db()
    return version


def stream_upload(
    team: Team,
    version: ModelVersion,
    *,
    seed: int = 41,
    start: str = "2026-11-01",
    days: int = 14,
    frames: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> None:
    """Append a production log to the version's stream: predictions, then the outcomes known so far."""
    predictions, outcomes = frames or production_frames(4000, seed=seed, start=start, days=days)
    for kind, frame, roles in (("predictions", predictions, STREAM_ROLES), ("outcomes", outcomes, OUTCOME_ROLES)):
        prediction_batch_upload(
            model_version=version,
            kind=kind,
            file=io.BytesIO(frame.to_csv(index=False).encode()),
            filename=f"{kind}.csv",
            column_roles=roles,
            actor=team.owner,
        )


@pytest.fixture
def finished_run(team, model_version, media_root) -> Any:
    """A succeeded audit with a drift reference, findings, and a group too small to publish (8 patients)."""
    from audits.models import AuditRun
    from audits.services import audit_run_create, audit_run_execute

    frame = clinical_frame(1500, seed=4)
    frame.loc[frame.index[:8], "race"] = "Pacific Islander"
    current = upload_frame(team, frame, name="current")
    reference = upload_frame(team, clinical_frame(1500, seed=5), name="reference", kind="reference")
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    assert run.status == AuditRun.Status.SUCCEEDED, run.error
    return run


@pytest.fixture
def api_objects(team, finished_run) -> dict[str, Any]:
    """One of each kind of object the API addresses by id, in the team's organization: their ids."""
    from audits.services.alerts import alert_raise
    from audits.services.schedules import audit_schedule_create
    from reports.services import report_generate_for_run

    version = finished_run.model_version
    stream_upload(team, version, days=3)
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    schedule = audit_schedule_create(ai_model=version.ai_model, actor=team.owner, name="Weekly", cron="0 6 * * 1")
    alert = alert_raise(
        ai_model=version.ai_model, kind="run_failed", incident_key="tenancy", title="Run failed", details={}
    )
    token, _ = services.api_token_create(
        organization=team.organization, user=team.owner, name="owner-ci", scope="ci", actor=team.owner
    )
    return {
        "model_id": version.ai_model_id,
        "version_id": version.pk,
        "dataset_id": finished_run.dataset_id,
        "run_id": finished_run.pk,
        "report_id": report.pk,
        "finding_id": finished_run.findings.first().pk,
        "schedule_id": schedule.pk,
        "alert_id": alert.pk,
        "token_id": token.pk,
        "key": "intervention_details",
    }
