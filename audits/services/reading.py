"""Reading a run's data: its datasets' partitions, the plan every pass agrees on, chunks and samples."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import IO, TYPE_CHECKING, Any

from django.conf import settings

from audits.engines.audit import AuditPlan, DataStatistics, ReferenceStatistics, audit_report, drift_column_types
from audits.engines.tables import (
    ColumnRoles,
    iter_parquet_chunks,
    numeric_ranges,
    parquet_min_max,
    read_parquet_sample,
    score_is_probability,
)
from audits.models import AuditRun
from audits.services.errors import AuditInputError
from audits.services.policies import audit_policy_for
from governance.models import Dataset, DatasetPartition

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AuditInputError", "audit_plan", "chunks_of", "dataset_partitions", "evidently_sample", "open_partitions"]


def dataset_partitions(dataset: Dataset) -> list[DatasetPartition]:
    """The dataset's partitions in row order; every stored dataset has at least one."""
    partitions = list(dataset.partitions.order_by("index"))
    if len(partitions) != dataset.partition_count:
        raise AuditInputError(
            f"dataset {dataset.pk} should have {dataset.partition_count} partitions and has {len(partitions)}"
        )
    return partitions


def open_partitions(files: ExitStack, partitions: list[DatasetPartition], stage: str = "data") -> list[IO[bytes]]:
    """Open every partition, checking that each is Parquet; an error names the partition."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    opened: list[IO[bytes]] = []
    for partition in partitions:
        try:
            stored = files.enter_context(partition.file.open("rb"))
        except FileNotFoundError:
            raise AuditInputError(f"{describe_partition(partition, stage)} is missing from storage") from None
        try:
            pq.ParquetFile(stored)
        except (pa.ArrowInvalid, OSError) as exc:
            raise AuditInputError(f"{describe_partition(partition, stage)} cannot be read as Parquet ({exc})") from None
        stored.seek(0)
        opened.append(stored)
    return opened


def reference_columns(run: AuditRun, roles: ColumnRoles) -> list[str]:
    """The role columns the reference has too: what its passes read."""
    assert run.reference_dataset is not None
    names = {c["name"] for c in run.reference_dataset.columns}
    return [c for c in roles.all_columns() if c in names]


def audit_plan(run: AuditRun, data_files: list[IO[bytes]], reference_files: list[IO[bytes]]) -> AuditPlan:
    """Decide once, from schemas and Parquet footers, what every pass over the run's data agrees on.

    The score is a probability when every partition's values lie in [0, 1]; with a reference, the
    drift columns and their histogram ranges span every partition of both datasets.
    """
    roles = ColumnRoles.from_dict(run.dataset.column_roles)
    plan = AuditPlan(roles=roles, policy=audit_policy_for(run))
    if roles.score:
        bounds = [parquet_min_max(f, roles.score) for f in data_files]
        lows = [low for low, _ in bounds if low is not None]
        highs = [high for _, high in bounds if high is not None]
        complete = len(lows) == len(highs) == len(bounds)
        plan.score_is_probability = score_is_probability(
            min(lows) if complete else None, max(highs) if complete else None
        )
    if run.reference_dataset is not None:
        plan.numerical, plan.categorical = drift_column_types(roles, run.dataset.columns, run.reference_dataset.columns)
        if not plan.numerical and not plan.categorical:
            raise AuditInputError("the reference dataset shares none of the audited dataset's feature columns")
        plan.numeric_ranges = numeric_ranges([*data_files, *reference_files], plan.numerical)
    return plan


def chunks_of(files: list[IO[bytes]], columns: list[str]) -> Iterator[pd.DataFrame]:
    """The named columns of the files in turn, chunk by chunk: one pass over the partitions in row order."""
    return itertools.chain.from_iterable(iter_parquet_chunks(f, columns=columns) for f in files)


def sample_of(files: list[IO[bytes]], rows: list[int], *, columns: list[str], seed: int) -> pd.DataFrame:
    """A seeded uniform sample of AUDIT_EVIDENTLY_REPORT_ROWS rows (or all of them) over the partitions.

    Each partition gives its share of the sample, in proportion to its rows; one partition gives
    exactly what a single file gives.
    """
    limit = settings.AUDIT_EVIDENTLY_REPORT_ROWS
    if len(files) == 1:
        return read_parquet_sample(files[0], columns=columns, max_rows=limit, seed=seed)
    total = sum(rows)
    shares = _shares(rows, min(limit, total))
    import pandas as pd

    pieces = [
        read_parquet_sample(f, columns=columns, max_rows=share, seed=seed + index)
        for index, (f, share) in enumerate(zip(files, shares, strict=True))
        if share > 0
    ]
    return pd.concat(pieces, ignore_index=True)


def _shares(rows: list[int], wanted: int) -> list[int]:
    """`wanted` split over partitions in proportion to their rows (largest remainders), none above its rows."""
    total = sum(rows)
    exact = [wanted * r / total for r in rows]
    shares = [int(x) for x in exact]
    by_remainder = sorted(range(len(rows)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in itertools.islice(by_remainder, wanted - sum(shares)):
        shares[i] += 1
    return [min(share, r) for share, r in zip(shares, rows, strict=True)]


def rows_of(partitions: Iterable[DatasetPartition]) -> list[int]:
    return [p.row_count for p in partitions]


def evidently_sample(
    run: AuditRun,
    plan: AuditPlan,
    data: tuple[list[IO[bytes]], list[DatasetPartition]],
    reference: tuple[list[IO[bytes]], list[DatasetPartition]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (reference, current) rows Evidently's interactive report is rendered from."""
    columns = plan.numerical + plan.categorical
    return (
        sample_of(reference[0], rows_of(reference[1]), columns=columns, seed=run.pk),
        sample_of(data[0], rows_of(data[1]), columns=columns, seed=run.pk),
    )


def describe_partition(partition: DatasetPartition | None, stage: str) -> str:
    """How a person names a partition in an error: which dataset, which partition, which rows."""
    if partition is None:
        return "Evidently's drift report" if stage == "report" else "the merge of the partitions' statistics"
    dataset = partition.dataset
    which = "reference" if stage == "reference" else "audited"
    if dataset.partition_count == 1:
        return f"the stored file of the {which} dataset {dataset.name!r}"
    return (
        f"partition {partition.index + 1} of {dataset.partition_count} ({partition.rows_text}) "
        f"of the {which} dataset {dataset.name!r}"
    )


def run_report(
    run: AuditRun,
    plan: AuditPlan,
    data: DataStatistics,
    reference: ReferenceStatistics | None,
    sample: tuple[pd.DataFrame, pd.DataFrame] | None,
    on_progress: Callable[[str, int], None] | None = None,
) -> tuple[dict[str, Any], Any]:
    """The run's result document (and Evidently's snapshot) from its merged statistics."""
    return audit_report(
        data,
        plan,
        reference=reference,
        schema=run.dataset.columns,
        reference_schema=run.reference_dataset.columns if run.reference_dataset else None,
        identifiers=run.dataset.identifier_scan,
        evidently_sample=sample,
        on_progress=on_progress,
    )
