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
    DatasetPartition,
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
    rows: int


def parquet_store(table: Any, *, folder: str) -> StoredParquet:
    """Write an Arrow table once as zstd Parquet in row groups through Django's storage; its name and sha256."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=settings.DATASET_PARQUET_ROW_GROUP_SIZE, compression="zstd")
    parquet_bytes = buffer.getvalue()
    name = default_storage.save(f"{folder}/{uuid.uuid4().hex}.parquet", ContentFile(parquet_bytes))
    return StoredParquet(
        name=name,
        sha256=hashlib.sha256(parquet_bytes).hexdigest(),
        size_bytes=len(parquet_bytes),
        rows=table.num_rows,
    )


@contextmanager
def removed_on_failure(*stored_names: str) -> Iterator[None]:
    """Delete stored files if the block that records them fails: a file no row names would be orphaned."""
    try:
        yield
    except BaseException:
        for name in stored_names:
            default_storage.delete(name)
        raise


def partition_rows(table: Any) -> int:
    """Rows per partition: at most DATASET_PARTITION_ROWS and about DATASET_PARTITION_BYTES of memory,
    in whole row groups, so that partitions split the data where a single reader's chunks do."""
    row_group = settings.DATASET_PARQUET_ROW_GROUP_SIZE
    rows = settings.DATASET_PARTITION_ROWS
    if table.nbytes > 0 and table.num_rows > 0:
        rows = min(rows, int(settings.DATASET_PARTITION_BYTES * table.num_rows / table.nbytes))
    if rows >= row_group:
        rows -= rows % row_group
    return max(rows, 1)


def parquet_store_partitions(table: Any, *, folder: str) -> list[StoredParquet]:
    """Write an Arrow table as Parquet partitions of bounded size (`partition_rows`), in row order.

    If any write fails, the partitions already written are deleted.
    """
    step = partition_rows(table)
    stored: list[StoredParquet] = []
    try:
        for start in range(0, max(table.num_rows, 1), step):
            stored.append(parquet_store(table.slice(start, step), folder=folder))
    except BaseException:
        for part in stored:
            default_storage.delete(part.name)
        raise
    return stored


def partitions_sha256(stored: list[StoredParquet]) -> str:
    """The sha256 a dataset cites: its one file's, or that of its partitions' sha256s, one per line."""
    if len(stored) == 1:
        return stored[0].sha256
    return hashlib.sha256("".join(f"{part.sha256}\n" for part in stored).encode("ascii")).hexdigest()


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
    """Validate an uploaded CSV, Parquet or Arrow file against its column roles, store it as Parquet and freeze it.

    1. Refuse files over DATASET_MAX_UPLOAD_BYTES and callers without a write role.
    2. Read the file (CSV, Parquet or Arrow) and check the roles against it; a bad file raises TableError.
    3. Convert once to Parquet in row groups and store it through Django's storage, in partitions.
    4. Scan every column for direct identifiers (kept with the dataset, raised by its audits).
    5. Record sha256 of the upload and of the Parquet file, rows and schema, and the event.

    A table past DATASET_PARTITION_ROWS rows (or DATASET_PARTITION_BYTES) is stored as several
    Parquet partitions in row order, each with its rows and sha256 (DatasetPartition).

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

    parts = parquet_store_partitions(loaded.table, folder=f"datasets/{organization.slug}")
    parquet_sha256 = partitions_sha256(parts)
    with removed_on_failure(*(part.name for part in parts)), transaction.atomic():
        dataset = Dataset.objects.create(
            organization=organization,
            ai_model=ai_model,
            name=name,
            kind=kind,
            description=description,
            period_start=period_start,
            period_end=period_end,
            file=parts[0].name,
            original_filename=filename[-255:],
            original_format=loaded.source_format,
            original_sha256=original_sha256,
            sha256=parquet_sha256,
            size_bytes=sum(part.size_bytes for part in parts),
            row_count=loaded.table.num_rows,
            partition_count=len(parts),
            columns=loaded.columns,
            column_roles=roles.to_dict(),
            identifier_scan=scan_identifiers(loaded.table),
            provenance=provenance or {},
            uploaded_by=actor if getattr(actor, "pk", None) else None,
        )
        first_row = 0
        for index, part in enumerate(parts):
            DatasetPartition.objects.create(
                dataset=dataset,
                index=index,
                file=part.name,
                first_row=first_row,
                row_count=part.rows,
                sha256=part.sha256,
                size_bytes=part.size_bytes,
            )
            first_row += part.rows
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
                "partitions": [part.sha256 for part in parts],
                "column_roles": dataset.column_roles,
            },
        )
    return dataset
