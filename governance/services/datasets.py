"""Datasets: validated against their roles, stored once as Parquet, frozen."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import IO, Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from governance.models import (
    WRITE_ROLES,
    AIModel,
    Dataset,
    Organization,
)
from governance.services.base import ServiceError, event_record, require_role


def sha256_of(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    stream.seek(0)
    for block in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(block)
    stream.seek(0)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredParquet:
    name: str
    sha256: str
    size_bytes: int


def parquet_store(table: Any, *, folder: str) -> StoredParquet:
    """Write an Arrow table once as zstd Parquet in row groups through Django's storage; its name and sha256."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=settings.DATASET_PARQUET_ROW_GROUP_SIZE, compression="zstd")
    parquet_bytes = buffer.getvalue()
    name = default_storage.save(f"{folder}/{uuid.uuid4().hex}.parquet", ContentFile(parquet_bytes))
    return StoredParquet(name=name, sha256=hashlib.sha256(parquet_bytes).hexdigest(), size_bytes=len(parquet_bytes))


@contextmanager
def removed_on_failure(stored_name: str) -> Iterator[None]:
    """Delete a stored file if the block that records it fails: a file no row names would be orphaned."""
    try:
        yield
    except BaseException:
        default_storage.delete(stored_name)
        raise


def refuse_oversized(file: IO[bytes]) -> None:
    """413 for an upload over DATASET_MAX_UPLOAD_BYTES."""
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(0)
    if size > settings.DATASET_MAX_UPLOAD_BYTES:
        raise ServiceError(
            f"the file is {size} bytes; the limit is {settings.DATASET_MAX_UPLOAD_BYTES} bytes "
            "(DATASET_MAX_UPLOAD_BYTES)",
            field="file",
            status=413,
        )


def dataset_upload(
    *,
    organization: Organization,
    name: str,
    file: IO[bytes],
    filename: str,
    column_roles: dict[str, Any],
    actor: Any,
    kind: str = Dataset.Kind.EVALUATION,
    ai_model: AIModel | None = None,
    description: str = "",
    period_start: date | None = None,
    period_end: date | None = None,
    provenance: dict[str, Any] | None = None,
) -> Dataset:
    """Validate an uploaded CSV or Parquet file against its column roles, store it as Parquet and freeze it.

    1. Refuse files over DATASET_MAX_UPLOAD_BYTES and callers without a write role.
    2. Read the file (CSV or Parquet) and check the roles against it; a bad file raises TableError.
    3. Convert once to Parquet in row groups and store it through Django's storage.
    4. Scan every column for direct identifiers (kept with the dataset, raised by its audits).
    5. Record sha256 of the upload and of the Parquet file, rows and schema, and the event.

    """
    from audits.engines.identifiers import scan_identifiers
    from audits.engines.tables import ColumnRoles, read_table, validate_roles

    require_role(actor, organization, WRITE_ROLES, doing="Uploading a dataset")
    if ai_model is not None and ai_model.organization_id != organization.pk:
        raise ServiceError("the model belongs to another organization", field="ai_model")
    if kind not in Dataset.Kind.values:
        raise ServiceError(f"kind must be one of {', '.join(Dataset.Kind.values)}", field="kind")
    if period_start and period_end and period_start > period_end:
        raise ServiceError("period_start is after period_end", field="period_start")
    refuse_oversized(file)
    roles = ColumnRoles.from_dict(column_roles)
    original_sha256 = sha256_of(file)
    loaded = read_table(file, filename=filename)
    validate_roles(loaded.table, roles)

    stored = parquet_store(loaded.table, folder=f"datasets/{organization.slug}")
    stored_name, parquet_sha256 = stored.name, stored.sha256
    with removed_on_failure(stored_name), transaction.atomic():
        dataset = Dataset.objects.create(
            organization=organization,
            ai_model=ai_model,
            name=name,
            kind=kind,
            description=description,
            period_start=period_start,
            period_end=period_end,
            file=stored_name,
            original_filename=filename[-255:],
            original_format=loaded.source_format,
            original_sha256=original_sha256,
            sha256=parquet_sha256,
            size_bytes=stored.size_bytes,
            row_count=loaded.table.num_rows,
            columns=loaded.columns,
            column_roles=roles.to_dict(),
            identifier_scan=scan_identifiers(loaded.table),
            provenance=provenance or {},
            uploaded_by=actor if getattr(actor, "pk", None) else None,
        )
        event_record(
            organization=organization,
            actor=actor,
            action="dataset.uploaded",
            obj=dataset,
            after={
                "name": name,
                "sha256": parquet_sha256,
                "original_sha256": original_sha256,
                "rows": dataset.row_count,
                "column_roles": dataset.column_roles,
            },
        )
    return dataset
