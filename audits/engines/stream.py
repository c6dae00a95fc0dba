"""A model version's production stream: checking its batches, and cutting a window of it into an auditable table.

Predictions batches carry a record id, an optional event time, the model's outputs, the protected
attributes and the features, and the outcome when it is already known. Outcomes batches carry the
record id and outcomes that became known later. A window keeps the predictions whose event time falls
in it (the batch's arrival time when it has no timestamp column), the latest prediction per record,
joined with the latest outcome per record; rows whose outcome is still unknown are left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from audits.engines.errors import TableError
from audits.engines.tables import ColumnRoles, binary_values

# Roles a stream batch has beyond those of an audited dataset.
STREAM_KEYS = ("record_id", "timestamp")
PREDICTIONS = "predictions"
OUTCOMES = "outcomes"
# Internal column names of the join; a file may not use them.
_RECORD, _TIME, _ORDER = "__record_id", "__event_time", "__order"


def stream_roles(data: Any, *, kind: str) -> dict[str, Any]:
    """Check the roles of a stream batch and return them in their stored form."""
    if not isinstance(data, dict):
        raise TableError("column_roles must be a JSON object with keys record_id, timestamp, prediction, ...")
    record_id = data.get("record_id")
    if not isinstance(record_id, str) or not record_id:
        raise TableError(
            "column_roles.record_id is required: name the column with the record (encounter) id that joins "
            "predictions to outcomes arriving later"
        )
    timestamp = data.get("timestamp") or None
    if timestamp is not None and not isinstance(timestamp, str):
        raise TableError("column_roles.timestamp must be a column name")
    if kind == OUTCOMES:
        if not isinstance(data.get("label"), str) or not data["label"]:
            raise TableError("an outcomes batch needs column_roles.label: the column with the observed outcome")
        alternative = data.get("alternative_outcome") or None
        return {
            "record_id": record_id,
            "timestamp": timestamp,
            "label": data["label"],
            "alternative_outcome": alternative,
        }
    if kind != PREDICTIONS:
        raise TableError(f"kind must be {PREDICTIONS} or {OUTCOMES}")
    # The audit roles, with the label optional: outcomes may arrive later.
    audit = {k: v for k, v in data.items() if k not in STREAM_KEYS}
    audit_roles = ColumnRoles.from_dict({**audit, "label": audit.get("label") or _RECORD}).to_dict()
    if audit_roles["label"] == _RECORD:
        audit_roles["label"] = None
    return {"record_id": record_id, "timestamp": timestamp, **audit_roles}


def batch_columns(roles: dict[str, Any]) -> list[str]:
    """Every column a batch's roles name, in a stable order, without repeats."""
    names: list[str] = [roles["record_id"]]
    if roles.get("timestamp"):
        names.append(roles["timestamp"])
    for key in ("label", "prediction", "score", "alternative_outcome"):
        if roles.get(key):
            names.append(roles[key])
    names += [p["column"] for p in roles.get("protected") or []]
    names += list(roles.get("features") or [])
    return list(dict.fromkeys(names))


def check_batch(table: pa.Table, roles: dict[str, Any], *, kind: str) -> tuple[datetime | None, datetime | None]:
    """Check a batch against its roles; the first and last event time, if it has a timestamp column.

    Every named column must exist; record ids must be present, integer or text, and unique within the
    batch; event times must parse; predictions must be 0/1, scores finite numbers, outcomes 0/1.
    """
    available = table.column_names
    for column in batch_columns(roles):
        if column not in available:
            raise TableError(f"column {column!r} named in column_roles is not in the file", column=column)
    for reserved in (_RECORD, _TIME, _ORDER):
        if reserved in available:
            raise TableError(f"the column name {reserved!r} is reserved; rename it", column=reserved)
    record_ids(table.column(roles["record_id"]), name=roles["record_id"], unique=True)
    first = last = None
    if roles.get("timestamp"):
        times = event_times(table.column(roles["timestamp"]).to_pandas(), column=roles["timestamp"])
        first, last = times.min().to_pydatetime(), times.max().to_pydatetime()
    label = roles.get("label")
    if kind == OUTCOMES:
        assert label is not None  # stream_roles requires it of outcomes
        binary_values(table.column(label).to_pandas(), column=label, role="label")
        return first, last
    if roles.get("prediction"):
        binary_values(table.column(roles["prediction"]).to_pandas(), column=roles["prediction"], role="prediction")
    if roles.get("score"):
        score = table.column(roles["score"]).to_pandas()
        if not pd.api.types.is_numeric_dtype(score) or pd.api.types.is_bool_dtype(score):
            raise TableError(f"score column {roles['score']!r} must be numeric", column=roles["score"])
        finite = np.isfinite(score.to_numpy(dtype=float, na_value=np.nan))
        if not finite.all():
            row = int(np.argmin(finite)) + 1
            raise TableError(
                f"score column {roles['score']!r} has a missing or infinite value at data row {row}",
                column=roles["score"],
            )
    if label:
        # Outcomes may all be pending: an empty label column is fine, a wrong value is not.
        known = table.column(label).to_pandas().dropna()
        if len(known):
            binary_values(known, column=label, role="label (where known)")
    return first, last


def record_ids(values: pa.ChunkedArray, *, name: str, unique: bool, as_text: bool = True) -> pd.Series:
    """Record ids as join keys: as text, so that 1042 in one batch joins "1042" in another, or as
    64-bit integers when every batch of the join has integer ids (the faster join)."""
    kind = values.type
    if not (pa.types.is_integer(kind) or _is_text(kind)):
        raise TableError(f"record id column {name!r} must hold integers or text, found {kind}", column=name)
    raw = values.to_pandas()
    if raw.isna().any():
        row = int(np.argmax(raw.isna().to_numpy())) + 1
        raise TableError(f"record id column {name!r} is missing a value at data row {row}", column=name)
    ids = raw.astype("string") if as_text else raw.astype("int64")
    if unique:
        repeated = ids.duplicated(keep="first").to_numpy()
        if repeated.any():
            row = int(np.argmax(repeated)) + 1
            # The value itself is not echoed: record ids can be identifying.
            raise TableError(
                f"record id column {name!r} repeats an earlier record at data row {row}; "
                "a batch holds one row per record",
                column=name,
            )
    return ids


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def event_times(series: pd.Series, *, column: str) -> pd.Series:
    """Event times as UTC timestamps; text is read as ISO 8601, and a time without a zone is taken as UTC."""
    if pd.api.types.is_datetime64_any_dtype(series):
        parsed = pd.to_datetime(series, utc=True)
    else:
        parsed = pd.to_datetime(series.astype("string"), utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad)) + 1
        raise TableError(
            f"timestamp column {column!r} has a missing or unreadable time at data row {row}; "
            "use ISO 8601, e.g. 2026-11-25T08:30:00Z",
            column=column,
        )
    return parsed


@dataclass(frozen=True)
class Batch:
    """A batch read for a window: its id, its roles, its rows (the named columns), and when it arrived."""

    batch_id: int
    roles: dict[str, Any]
    table: pa.Table
    received_at: datetime


@dataclass(frozen=True)
class Window:
    table: pa.Table
    column_roles: dict[str, Any]
    statistics: dict[str, int]


def window_table(predictions: list[Batch], outcomes: list[Batch], *, start: datetime, end: datetime) -> Window:
    """The auditable rows of the stream in [start, end): latest prediction per record, joined with its outcome.

    1. Keep predictions whose event time is in the window; of a record scored twice, the latest.
    2. Join the latest outcome per record id; an outcome from an outcomes batch wins over one in the
       predictions batch.
    3. Leave out, and count, the rows whose outcome is still unknown.
    Batches are given in upload order; the audit roles are those of the latest predictions batch. The
    wide rows stay in Arrow: only the keys (record, time, order, outcome) are handled as arrays, and the
    chosen rows are taken once.
    """
    if not predictions:
        raise TableError("the production stream has no predictions in this window")
    roles = predictions[-1].roles
    label_name = roles.get("label") or next((b.roles["label"] for b in reversed(outcomes)), None)
    if label_name is None:
        raise TableError("no outcomes yet: upload an outcomes batch with the label for these records")
    alternative_name = roles.get("alternative_outcome") or next(
        (b.roles["alternative_outcome"] for b in reversed(outcomes) if b.roles.get("alternative_outcome")), None
    )
    wide_columns = [
        c for c in batch_columns(roles) if c not in (roles["record_id"], roles.get("timestamp"), roles.get("label"))
    ]
    # Integer keys join faster; text keys are needed as soon as one batch writes its ids as text.
    as_text = any(_is_text(b.table.schema.field(b.roles["record_id"]).type) for b in [*predictions, *outcomes])
    low, high = pd.Timestamp(start).value, pd.Timestamp(end).value
    tables: list[pa.Table] = []
    records: list[np.ndarray] = []
    times: list[np.ndarray] = []
    orders: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for order, batch in enumerate(predictions):
        missing = [c for c in wide_columns if c not in batch.table.column_names]
        if missing:
            raise TableError(
                f"predictions batch {batch.batch_id} lacks column {missing[0]!r} that the latest batch has",
                column=missing[0],
            )
        timestamp = batch.roles.get("timestamp")
        if timestamp:
            parsed = event_times(batch.table.column(timestamp).to_pandas(), column=timestamp)
            nanoseconds = pd.DatetimeIndex(parsed).asi8
        else:
            nanoseconds = np.full(batch.table.num_rows, pd.Timestamp(batch.received_at).value, dtype=np.int64)
        in_window = (nanoseconds >= low) & (nanoseconds < high)
        if not in_window.any():
            continue
        kept = batch.table.filter(pa.array(in_window))
        tables.append(kept.select(wide_columns))
        ids = record_ids(kept.column(batch.roles["record_id"]), name="record_id", unique=False, as_text=as_text)
        records.append(ids.to_numpy())
        times.append(nanoseconds[in_window])
        orders.append(np.full(kept.num_rows, order))
        label = batch.roles.get("label")
        known = kept.column(label).to_numpy(zero_copy_only=False).astype(float) if label else None
        labels.append(known if known is not None else np.full(kept.num_rows, np.nan))
    if not tables:
        raise TableError("the production stream has no predictions in this window")
    record = np.concatenate(records)
    in_window_rows = len(record)
    # Sorted by event time (then upload order), the last row of each record is its latest score.
    by_time = np.lexsort((np.concatenate(orders), np.concatenate(times)))
    latest = ~pd.Series(record[by_time]).duplicated(keep="last").to_numpy()
    chosen = by_time[latest]
    rescored = in_window_rows - len(chosen)

    label = np.concatenate(labels)[chosen]
    alternative = None
    if outcomes:
        keys, outcome, later_alternative = _latest_outcomes(outcomes, as_text=as_text)
        position = keys.get_indexer(record[chosen])
        found = position >= 0
        label = np.where(found, outcome[np.where(found, position, 0)], label)
        if alternative_name and later_alternative is not None and alternative_name not in wide_columns:
            alternative = np.where(found, later_alternative[np.where(found, position, 0)], np.nan)
    known_outcome = ~np.isnan(label)
    awaiting = int((~known_outcome).sum())
    table = pa.concat_tables(tables, promote_options="permissive").take(pa.array(chosen[known_outcome]))
    table = table.append_column(label_name, pa.array(label[known_outcome].astype(np.int8)))
    if alternative is not None:
        table = table.append_column(alternative_name, pa.array(alternative[known_outcome]))
    column_roles = {k: v for k, v in roles.items() if k not in STREAM_KEYS}
    column_roles["label"] = label_name
    column_roles["alternative_outcome"] = alternative_name if alternative_name in table.column_names else None
    return Window(
        table=table,
        column_roles=column_roles,
        statistics={
            "predictions_in_window": in_window_rows,
            "rescored_records_dropped": rescored,
            "awaiting_outcome": awaiting,
            "rows": table.num_rows,
        },
    )


def _latest_outcomes(outcomes: list[Batch], *, as_text: bool) -> tuple[pd.Index, np.ndarray, np.ndarray | None]:
    """The latest outcome (and alternative outcome) of each record id: the ids as a unique index, and the values
    in the same order."""
    ids, values, alternatives = [], [], []
    has_alternative = any(b.roles.get("alternative_outcome") for b in outcomes)
    for batch in outcomes:
        roles = batch.roles
        batch_ids = record_ids(
            batch.table.column(roles["record_id"]), name=roles["record_id"], unique=False, as_text=as_text
        )
        ids.append(batch_ids.to_numpy())
        values.append(batch.table.column(roles["label"]).to_numpy(zero_copy_only=False).astype(float))
        if has_alternative:
            column = roles.get("alternative_outcome")
            alternatives.append(
                batch.table.column(column).to_numpy(zero_copy_only=False).astype(float)
                if column
                else np.full(batch.table.num_rows, np.nan)
            )
    record = np.concatenate(ids)
    # Upload order: of two outcomes of one record, the later batch's (and within a batch, the later row's).
    last = ~pd.Series(record).duplicated(keep="last").to_numpy()
    alternative = np.concatenate(alternatives)[last] if has_alternative else None
    return pd.Index(record[last]), np.concatenate(values)[last], alternative
