"""Live progress of a run: the engine says how many rows it has read, the worker records it, and the run page
follows it in place (htmx polls a status block, then reloads once when the run has finished)."""

from __future__ import annotations

import pytest
from django.test import Client

from audits.engines.audit import audit_chunks
from audits.engines.tables import ColumnRoles
from audits.models import AuditRun
from audits.services import audit_run_create, audit_run_execute
from tests.conftest import CLINICAL_ROLES, clinical_frame, upload_frame


def test_the_engine_reports_rows_read_chunk_by_chunk() -> None:
    frame = clinical_frame(3000, seed=8)
    chunks = [frame.iloc[:1000], frame.iloc[1000:2500], frame.iloc[2500:]]
    reference = clinical_frame(1200, seed=9)
    heard: list[tuple[str, int]] = []
    schema = [{"name": c, "dtype": str(t)} for c, t in frame.dtypes.items()]
    audit_chunks(
        chunks,
        roles=ColumnRoles.from_dict(CLINICAL_ROLES),
        reference_chunks=[reference.iloc[:600], reference.iloc[600:]],
        schema=schema,
        reference_schema=schema,
        on_progress=lambda step, rows: heard.append((step, rows)),
    )
    assert heard == [
        ("reading the reference", 600),
        ("reading the reference", 1200),
        ("reading the data", 1000),
        ("reading the data", 2500),
        ("reading the data", 3000),
        ("computing metrics, intervals and tests", 3000),
    ]


@pytest.mark.django_db
def test_the_run_records_how_far_it_got_and_its_page_follows_it(team, model_version, media_root) -> None:
    current = upload_frame(team, clinical_frame(1500, seed=4), name="current")
    reference = upload_frame(team, clinical_frame(1200, seed=5), name="reference", kind="reference")
    run = audit_run_create(model_version=model_version, dataset=current, reference_dataset=reference, actor=team.owner)
    client = Client()
    client.force_login(team.viewer)
    page = client.get(f"/admin/audits/auditrun/{run.pk}/change/").content.decode()
    # Queued: the status block polls its own URL; without JavaScript the page refreshes itself.
    assert f'hx-get="/admin/audits/auditrun/{run.pk}/progress/"' in page and 'hx-trigger="every 2s"' in page
    assert '<noscript><meta http-equiv="refresh"' in page
    assert "Waiting for a worker" in page

    # Half-way through the data, as a worker would have recorded it.
    AuditRun.objects.filter(pk=run.pk).update(status="running", progress="reading the data", rows_read=500)
    block = client.get(f"/admin/audits/auditrun/{run.pk}/progress/", headers={"HX-Request": "true"})
    text = block.content.decode()
    assert "Reading the data</label>: 500 of 1,500 rows (33%)" in text
    assert 'max="1500" value="500"' in text and "HX-Refresh" not in block.headers
    assert "<html" not in text
    AuditRun.objects.filter(pk=run.pk).update(progress="reading the reference", rows_read=300)
    text = client.get(f"/admin/audits/auditrun/{run.pk}/progress/").content.decode()
    assert "Reading the reference</label>: 300 of 1,200 rows (25%)" in text

    AuditRun.objects.filter(pk=run.pk).update(status="queued", progress="", rows_read=0)
    audit_run_execute(run_id=run.pk, worker="w")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.rows_read == 1500
    block = client.get(f"/admin/audits/auditrun/{run.pk}/progress/", headers={"HX-Request": "true"})
    # Finished: the page is told to reload once, to show the results; it then polls no more.
    assert block.headers["HX-Refresh"] == "true"
    page = client.get(f"/admin/audits/auditrun/{run.pk}/change/").content.decode()
    assert "hx-get" not in page and "Verdict:" in page
