"""The production stream of a model version: batches appended and frozen, and windows cut from it for audits."""

from __future__ import annotations

import io
from datetime import datetime
from typing import IO, Any

from django.db import transaction
from django.utils import timezone

from audits.models import PredictionBatch
from governance.models import WRITE_ROLES, Dataset, ModelVersion
from governance.services import ServiceError, event_record, require_role
from governance.services.datasets import (
    dataset_upload,
    parquet_store,
    refuse_oversized,
    removed_on_failure,
    sha256_of,
)


def prediction_batch_upload(
    *, model_version: ModelVersion, kind: str, file: IO[bytes], filename: str, column_roles: Any, actor: Any
) -> PredictionBatch:
    """Append a batch of predictions or outcomes to a model version's production stream, frozen like a dataset.

    1. Refuse callers without a write role and files over DATASET_MAX_UPLOAD_BYTES.
    2. Read the file (CSV, Parquet or Arrow) and check it against its roles (engines.stream.check_batch).
    3. Store it once as Parquet through Django's storage, with the sha256 of the upload and of the
       Parquet file, rows, schema, and the span of its event times; record the event.
    """
    from audits.engines.identifiers import scan_identifiers
    from audits.engines.stream import check_batch, stream_roles
    from audits.engines.tables import read_table

    organization = model_version.ai_model.organization
    require_role(actor, organization, WRITE_ROLES, doing="Uploading to a production stream")
    if kind not in PredictionBatch.Kind.values:
        raise ServiceError(f"kind must be one of {', '.join(PredictionBatch.Kind.values)}", field="kind")
    refuse_oversized(file)
    roles = stream_roles(column_roles, kind=kind)
    original_sha256 = sha256_of(file)
    loaded = read_table(file, filename=filename)
    first, last = check_batch(loaded.table, roles, kind=kind)
    received = timezone.now()
    stored = parquet_store(loaded.table, folder=f"stream/{organization.slug}/{model_version.pk}")
    with removed_on_failure(stored.name), transaction.atomic():
        batch = PredictionBatch.objects.create(
            organization=organization,
            model_version=model_version,
            kind=kind,
            file=stored.name,
            original_filename=filename[-255:],
            original_format=loaded.source_format,
            original_sha256=original_sha256,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            row_count=loaded.table.num_rows,
            columns=loaded.columns,
            column_roles=roles,
            identifier_scan=scan_identifiers(loaded.table),
            first_event_at=first or received,
            last_event_at=last or received,
            uploaded_by=actor if getattr(actor, "pk", None) else None,
        )
        event_record(
            organization=organization,
            actor=actor,
            action="prediction_batch.uploaded",
            obj=batch,
            after={
                "model_version": model_version.pk,
                "kind": kind,
                "sha256": stored.sha256,
                "original_sha256": original_sha256,
                "rows": batch.row_count,
            },
        )
    return batch


def production_window_snapshot(*, model_version: ModelVersion, start: datetime, end: datetime, actor: Any) -> Dataset:
    """Freeze the window [start, end) of a version's production stream as a dataset an audit can cite.

    1. Read the predictions batches whose event times overlap the window, and every outcomes batch
       of the version (outcomes arrive after the predictions they answer), in upload order.
    2. Cut the window and join outcomes by record id (engines.stream.window_table).
    3. Upload the result as a production dataset through dataset_upload (validated, scanned, frozen),
       with the window and the batches it came from, by id and sha256, as its provenance.
    """
    import pyarrow.parquet as pq

    from audits.engines.stream import Batch, batch_columns, window_table

    if start >= end:
        raise ServiceError("the window's start must be before its end", field="start")
    batches = model_version.prediction_batches.order_by("created_at", "pk")
    predictions = list(
        batches.filter(kind=PredictionBatch.Kind.PREDICTIONS, last_event_at__gte=start, first_event_at__lt=end)
    )
    outcomes = list(batches.filter(kind=PredictionBatch.Kind.OUTCOMES))
    if not predictions:
        raise ServiceError(
            f"the production stream of {model_version} has no predictions between {start:%Y-%m-%d %H:%M} and "
            f"{end:%Y-%m-%d %H:%M} UTC"
        )

    def read(batch: PredictionBatch) -> Batch:
        with batch.file.open("rb") as stored:
            table = pq.read_table(stored, columns=batch_columns(batch.column_roles))
        return Batch(batch_id=batch.pk, roles=batch.column_roles, table=table, received_at=batch.created_at)

    window = window_table([read(b) for b in predictions], [read(b) for b in outcomes], start=start, end=end)
    buffer = io.BytesIO()
    pq.write_table(window.table, buffer)
    buffer.seek(0)
    ai_model = model_version.ai_model
    provenance = {
        "source": "production_stream",
        "model_version": model_version.pk,
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "batches": [{"id": b.pk, "kind": b.kind, "sha256": b.sha256, "rows": b.row_count} for b in predictions]
        + [{"id": b.pk, "kind": b.kind, "sha256": b.sha256, "rows": b.row_count} for b in outcomes],
        **window.statistics,
    }
    return dataset_upload(
        organization=ai_model.organization,
        ai_model=ai_model,
        name=f"{ai_model.slug} {model_version.version} production {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}",
        kind=Dataset.Kind.PRODUCTION,
        description=(
            f"Window of the production stream of version {model_version.version}: "
            f"{window.statistics['predictions_in_window']} predictions in the window, "
            f"{window.statistics['rescored_records_dropped']} earlier scores of re-scored records left out, "
            f"{window.statistics['awaiting_outcome']} awaiting their outcome left out; "
            f"{len(predictions)} predictions batches, {len(outcomes)} outcomes batches."
        ),
        period_start=start.date(),
        period_end=end.date(),
        file=buffer,
        filename="window.parquet",
        column_roles=window.column_roles,
        actor=actor,
        provenance=provenance,
    )
