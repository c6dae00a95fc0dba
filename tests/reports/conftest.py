"""Fixtures of the report tests."""

from __future__ import annotations

import pytest

from audits.models import AuditRun
from audits.services import audit_run_create, audit_run_execute
from tests.conftest import clinical_frame, upload_frame


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
