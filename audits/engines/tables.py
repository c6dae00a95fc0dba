"""Reading uploaded tables and checking their declared column roles. No Django here.

A user's file is refused with a TableError that names the column, the row or the
value at fault and what to do; nothing is coerced silently.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from audits.engines.errors import TableError

PARQUET_MAGIC = b"PAR1"
ARROW_FILE_MAGIC = b"ARROW1"  # Arrow IPC file format (Feather v2)
ARROW_STREAM_MARKER = b"\xff\xff\xff\xff"  # Arrow IPC stream format: a continuation marker first
ARROW_SUFFIXES = (".arrow", ".arrows", ".feather", ".ipc")
# Cells read as missing in a CSV. Narrower than pandas' default on purpose: "None", "none"
# and "n/a" are real categories in clinical extracts (e.g. "A1C test: None" = not measured).
CSV_MISSING_VALUES = ("", "NA", "N/A", "NaN", "nan", "NULL", "null", "#N/A")
MISSING_GROUP = "(missing)"


@dataclass(frozen=True)
class ProtectedAttribute:
    column: str
    reference: str | None = None


@dataclass(frozen=True)
class ColumnRoles:
    """What each column of a dataset means to an audit."""

    label: str
    prediction: str | None = None
    score: str | None = None
    protected: tuple[ProtectedAttribute, ...] = ()
    features: tuple[str, ...] = ()
    # Features whose numbers are codes, not quantities (e.g. admission type 1..8).
    categorical: tuple[str, ...] = ()
    alternative_outcome: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnRoles:
        if not isinstance(data, dict):
            raise TableError("column_roles must be a JSON object with keys label, prediction, protected, ...")
        if not isinstance(data.get("label"), str) or not data["label"]:
            raise TableError("column_roles.label is required: name the column that holds the observed outcome")
        if not data.get("prediction") and not data.get("score"):
            raise TableError(
                "column_roles needs a prediction column (0/1) or a score column "
                "(thresholded at the policy's operating point)"
            )
        protected_in = data.get("protected") or []
        if not isinstance(protected_in, list) or not protected_in:
            raise TableError(
                "column_roles.protected must list at least one protected attribute, "
                'e.g. [{"column": "race", "reference": "White"}]'
            )
        protected: list[ProtectedAttribute] = []
        for item in protected_in:
            if isinstance(item, str):
                protected.append(ProtectedAttribute(column=item))
            elif isinstance(item, dict) and isinstance(item.get("column"), str):
                reference = item.get("reference")
                protected.append(ProtectedAttribute(item["column"], None if reference is None else str(reference)))
            else:
                raise TableError(
                    f"column_roles.protected has an entry {item!r}; use {{'column': ..., 'reference': ...}}"
                )
        features = data.get("features") or []
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise TableError("column_roles.features must be a list of column names")
        categorical = data.get("categorical") or []
        if not isinstance(categorical, list) or not all(isinstance(f, str) for f in categorical):
            raise TableError("column_roles.categorical must be a list of column names")
        strays = [c for c in categorical if c not in features]
        if strays:
            raise TableError(
                f"column_roles.categorical names {strays[0]!r}, which is not among the features", column=strays[0]
            )
        return cls(
            label=data["label"],
            prediction=data.get("prediction") or None,
            score=data.get("score") or None,
            protected=tuple(protected),
            features=tuple(features),
            categorical=tuple(categorical),
            alternative_outcome=data.get("alternative_outcome") or None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "prediction": self.prediction,
            "score": self.score,
            "protected": [{"column": p.column, "reference": p.reference} for p in self.protected],
            "features": list(self.features),
            "categorical": list(self.categorical),
            "alternative_outcome": self.alternative_outcome,
        }

    @property
    def protected_columns(self) -> list[str]:
        return [p.column for p in self.protected]

    @property
    def references(self) -> dict[str, str | None]:
        return {p.column: p.reference for p in self.protected}

    def all_columns(self) -> list[str]:
        """Every column a role names, each once, in a stable order."""
        named: Iterable[str | None] = (
            self.label,
            self.prediction,
            self.score,
            *self.protected_columns,
            *self.features,
            self.alternative_outcome,
        )
        return list(dict.fromkeys(c for c in named if c))


@dataclass
class LoadedTable:
    table: pa.Table
    source_format: str
    columns: list[dict[str, str]] = field(default_factory=list)


def read_table(stream: IO[bytes], *, filename: str = "") -> LoadedTable:
    """Read a CSV, Parquet or Arrow IPC (file or stream) upload into an Arrow table, refusing what cannot
    be read faithfully."""
    head = stream.read(6)
    stream.seek(0)
    if head[:4] == PARQUET_MAGIC or filename.lower().endswith(".parquet"):
        table = _read_parquet(stream)
        source_format = "parquet"
    elif head == ARROW_FILE_MAGIC or head[:4] == ARROW_STREAM_MARKER or filename.lower().endswith(ARROW_SUFFIXES):
        table = _read_arrow(stream)
        source_format = "arrow"
    else:
        table = _read_csv(stream)
        source_format = "csv"
    if table.num_rows == 0:
        raise TableError("the file has a header but no rows")
    table = _supported(table)
    columns = [{"name": f.name, "dtype": str(f.type)} for f in table.schema]
    return LoadedTable(table=table, source_format=source_format, columns=columns)


def _supported(table: pa.Table) -> pa.Table:
    """Columns of numbers, text, booleans, dates and times, as the engines read them.

    Dictionary-encoded columns are decoded and a column of nothing but nulls becomes an empty float
    column: the values stay what they were. Nested, binary and decimal columns are refused, naming them.
    """
    for index, column in enumerate(table.schema):
        kind = column.type
        if pa.types.is_dictionary(kind):
            table = table.set_column(index, column.name, table.column(index).cast(kind.value_type))
            kind = kind.value_type
        if pa.types.is_null(kind):
            table = table.set_column(index, column.name, table.column(index).cast(pa.float64()))
            continue
        if pa.types.is_decimal(kind):
            raise TableError(
                f"column {column.name!r} holds decimal values; store it as a floating-point or integer column",
                column=column.name,
            )
        if not (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_string(kind)
            or pa.types.is_large_string(kind)
            or pa.types.is_temporal(kind)
        ):
            raise TableError(
                f"column {column.name!r} holds {kind} values; columns must hold numbers, text, booleans, "
                "dates or times",
                column=column.name,
            )
    return table


def _read_parquet(stream: IO[bytes]) -> pa.Table:
    try:
        table = pq.read_table(stream)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise TableError(f"the file is not a readable Parquet file: {exc}") from None
    names = table.column_names
    _refuse_duplicate_names(names)
    return table


def _read_arrow(stream: IO[bytes]) -> pa.Table:
    import pyarrow.ipc as ipc

    buffer = pa.py_buffer(stream.read())
    try:
        if buffer[:6].to_pybytes() == ARROW_FILE_MAGIC:
            table = ipc.open_file(buffer).read_all()
        else:
            table = ipc.open_stream(buffer).read_all()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise TableError(f"the file is not a readable Arrow IPC file or stream: {exc}") from None
    _refuse_duplicate_names(table.column_names)
    return table


def _read_csv(stream: IO[bytes]) -> pa.Table:
    raw = stream.read()
    if not raw.strip():
        raise TableError("the file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TableError(
            f"the file is not UTF-8 text (byte {exc.start} cannot be decoded); save it as UTF-8 CSV or upload Parquet"
        ) from None
    try:
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:
        raise TableError(
            f"the header line could not be read ({exc}); column names may have at most {MAX_COLUMN_NAME} characters"
        ) from None
    if not header or all(not h.strip() for h in header):
        raise TableError("the first line of the CSV must be a header with the column names")
    _refuse_duplicate_names(header)
    blank = [i + 1 for i, h in enumerate(header) if not h.strip()]
    if blank:
        raise TableError(f"header column {blank[0]} has no name; every column needs a name")
    return _parse_csv(raw, header)


# Arrow's reader infers a column's type from its first block; a value later that does not fit (a word in a
# column of numbers) is met by reading that column as text and inferring again from all of it.
_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error")
_RAGGED_ROW = re.compile(r"Expected (\d+) columns, got (\d+)")


def _parse_csv(raw: bytes, header: list[str]) -> pa.Table:
    """The CSV as an Arrow table, typed as pandas' `read_csv` types it, with Arrow's multi-threaded reader.

    Whole-column inference, as pandas does it: integers (floats when a value is missing), floats,
    booleans, else text; dates and times stay text, as written. Every missing marker of
    CSV_MISSING_VALUES is missing in any column. A row with more or fewer fields than the header is
    refused; the error never quotes the row's content.
    """
    import pyarrow.csv as pacsv

    as_text: dict[str, pa.DataType] = {}
    for _ in range(len(header) + 2):
        options = pacsv.ConvertOptions(
            null_values=list(CSV_MISSING_VALUES), strings_can_be_null=True, column_types=as_text
        )
        try:
            table = pacsv.read_csv(
                io.BytesIO(raw),
                read_options=pacsv.ReadOptions(block_size=16 << 20),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=options,
            )
        except pa.ArrowInvalid as exc:
            message = str(exc)
            conversion = _CONVERSION_ERROR.search(message)
            if conversion and int(conversion.group(1)) < len(header):
                as_text[header[int(conversion.group(1))]] = pa.string()
                continue
            ragged = _RAGGED_ROW.search(message)
            if ragged:
                raise TableError(
                    f"the CSV could not be parsed: a row has {ragged.group(2)} fields where the header has "
                    f"{ragged.group(1)} (a stray comma or an unclosed quote?)"
                ) from None
            raise TableError(f"the CSV could not be parsed: {message.split(':')[0]}") from None
        temporal = [f.name for f in table.schema if pa.types.is_temporal(f.type) and f.name not in as_text]
        if not temporal:
            break
        as_text.update(dict.fromkeys(temporal, pa.string()))
    for index, column in enumerate(table.schema):
        values = table.column(index)
        if column.name in as_text:
            values = _typed_like_pandas(values)
        elif pa.types.is_integer(column.type) and values.null_count:
            values = values.cast(pa.float64())  # pandas has no missing integers: it reads them as floats
        elif pa.types.is_null(column.type):
            values = values.cast(pa.float64())
        table = table.set_column(index, column.name, values)
    return table


def _typed_like_pandas(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column read as text, given the type pandas would infer from all of its values."""
    import pyarrow.compute as pc

    present = pc.drop_null(values)
    if len(present) == 0:
        return values.cast(pa.float64())
    for target in (pa.int64(), pa.float64()):
        if target == pa.int64() and values.null_count:
            continue
        try:
            return values.cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    lowered = pc.utf8_lower(present)
    if pc.all(pc.is_in(lowered, value_set=pa.array(["true", "false"]))).as_py():
        return pc.equal(pc.utf8_lower(values), "true")
    return values


MAX_COLUMN_NAME = 200


def _refuse_duplicate_names(names: list[str]) -> None:
    """Column names must be unique, and short enough to show in a report (a long one is a sign of a broken file)."""
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        if len(name) > MAX_COLUMN_NAME:
            raise TableError(
                f"column name {position} is {len(name):,} characters long; column names may have at most "
                f"{MAX_COLUMN_NAME} (is the first line a header, with line breaks where rows end?)"
            )
        if name in seen:
            raise TableError(f"column {name!r} appears twice in the header; column names must be unique", column=name)
        seen.add(name)


def validate_roles(table: pa.Table, roles: ColumnRoles) -> None:
    """Check that the roles fit the table: columns exist, labels are binary, scores are numbers."""
    available = table.column_names
    for column in roles.all_columns():
        if column not in available:
            shown = ", ".join(available[:30]) + (" ..." if len(available) > 30 else "")
            raise TableError(
                f"column {column!r} named in column_roles is not in the file (columns: {shown})", column=column
            )
    for role in ("label", "prediction"):
        column = getattr(roles, role)
        if column is None:
            continue
        values = binary_values(table.column(column).to_pandas(), column=column, role=role)
        if role == "label" and len(np.unique(values)) < 2:
            only = int(values[0])
            raise TableError(
                f"label column {column!r} has only one class ({only}); rates such as TPR and FPR need both outcomes",
                column=column,
            )
    if roles.score:
        score = table.column(roles.score).to_pandas()
        if not pd.api.types.is_numeric_dtype(score) or pd.api.types.is_bool_dtype(score):
            raise TableError(f"score column {roles.score!r} must be numeric, found {score.dtype}", column=roles.score)
        finite = np.isfinite(score.to_numpy(dtype=float, na_value=np.nan))
        if not finite.all():
            row = int(np.argmin(finite)) + 1
            raise TableError(
                f"score column {roles.score!r} has a missing or infinite value at data row {row}", column=roles.score
            )
    for attribute in roles.protected:
        groups = group_labels(table.column(attribute.column).to_pandas())
        present = set(groups.unique())
        if attribute.reference is not None and attribute.reference not in present:
            listed = ", ".join(sorted(present)[:20])
            raise TableError(
                f"reference group {attribute.reference!r} of protected attribute {attribute.column!r} "
                f"does not occur in the data (groups: {listed})",
                column=attribute.column,
            )
        if len(present) < 2:
            raise TableError(
                f"protected attribute {attribute.column!r} has a single group ({next(iter(present))!r}); "
                "a comparison needs at least two",
                column=attribute.column,
            )
    if roles.alternative_outcome:
        alt = table.column(roles.alternative_outcome).to_pandas()
        if not pd.api.types.is_numeric_dtype(alt):
            raise TableError(
                f"alternative outcome column {roles.alternative_outcome!r} must be numeric, found {alt.dtype}",
                column=roles.alternative_outcome,
            )


def binary_values(series: pd.Series, *, column: str, role: str) -> np.ndarray:
    """The column as an int8 array of 0/1, or a TableError naming the first bad value."""
    if pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.int8)
    if series.isna().any():
        row = int(np.argmax(series.isna().to_numpy())) + 1
        raise TableError(
            f"{role} column {column!r} is missing a value at data row {row}; every row needs 0 or 1", column=column
        )
    if not pd.api.types.is_numeric_dtype(series):
        bad = [v for v in series.unique()[:5]]
        raise TableError(f"{role} column {column!r} must hold 0 and 1, found values such as {bad!r}", column=column)
    as_float = series.to_numpy(dtype=float)
    bad_mask = (as_float != 0.0) & (as_float != 1.0)
    if bad_mask.any():
        bad_values = sorted({_plain(v) for v in as_float[bad_mask][:1000]})[:5]
        raise TableError(f"{role} column {column!r} must hold only 0 and 1, found {bad_values}", column=column)
    return as_float.astype(np.int8)


def group_codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's group as a small integer, and the group names (as group_labels spells them).

    Hash-based (pandas.factorize), so forming groups never sorts the rows.
    """
    codes, uniques = pd.factorize(series, sort=False, use_na_sentinel=True)
    names = [_plain(u) if isinstance(u, float) else str(u) for u in np.asarray(uniques, dtype=object)]
    if (codes < 0).any():
        codes = np.where(codes < 0, len(names), codes)
        names.append(MISSING_GROUP)
    return codes.astype(np.int64), names


def group_labels(series: pd.Series) -> pd.Series:
    """Group names as strings; a missing value is its own group rather than being dropped."""
    # Integer-valued floats (a CSV column with gaps reads as float) keep their integer spelling.
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        known = values[~np.isnan(values)]
        if np.all(np.isfinite(known) & (np.floor(known) == known)):
            return series.astype("Int64").astype("string").fillna(MISSING_GROUP)
        return series.map(lambda v: MISSING_GROUP if pd.isna(v) else _plain(v)).astype("string")
    return series.astype("string").fillna(MISSING_GROUP)


def _plain(value: float) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def score_is_probability(minimum: float | None, maximum: float | None) -> bool:
    """A score is a probability when all its values lie in [0, 1]."""
    return minimum is None or maximum is None or (minimum >= 0.0 and maximum <= 1.0)


def parquet_min_max(source: Any, column: str) -> tuple[float | None, float | None]:
    """A column's minimum and maximum from the Parquet footer's statistics, without reading the data."""
    metadata = pq.ParquetFile(source).metadata
    index = metadata.schema.to_arrow_schema().get_field_index(column)
    minimum = maximum = None
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(index).statistics
        if statistics is None or not statistics.has_min_max:
            return None, None
        minimum = statistics.min if minimum is None else min(minimum, statistics.min)
        maximum = statistics.max if maximum is None else max(maximum, statistics.max)
    return minimum, maximum


def numeric_ranges(sources: list[Any], columns: list[str]) -> dict[str, tuple[float, float]]:
    """The finite range of each column over all the sources (Parquet files or Arrow tables).

    Parquet footers give it without reading the data, unless they record an infinity, in which
    case that one column is read and its finite values measured.
    """
    import pyarrow.compute as pc

    ranges: dict[str, tuple[float, float]] = {}
    for column in columns:
        bounds: list[float] = []
        for source in sources:
            if isinstance(source, pa.Table):
                values = source.column(column)
                minimum, maximum = (None, None)
            else:
                values = None
                minimum, maximum = parquet_min_max(source, column)
            if minimum is None or maximum is None or not (math.isfinite(minimum) and math.isfinite(maximum)):
                if values is None:
                    values = pq.read_table(source, columns=[column]).column(column)
                finite = pc.filter(values, pc.is_finite(pc.cast(values, pa.float64())))
                minimum, maximum = (v.as_py() for v in pc.min_max(finite).values())
            bounds += [b for b in (minimum, maximum) if b is not None]
        if bounds:
            ranges[column] = (float(min(bounds)), float(max(bounds)))
    return ranges


def iter_parquet_chunks(source: Any, *, columns: list[str], batch_size: int = 100_000) -> Iterable[pd.DataFrame]:
    """Yield the named columns of a Parquet file chunk by chunk, never the whole table at once."""
    # pre_buffer keeps every column chunk it read ahead alive as long as the reader: 6 MB a chunk
    # here, 1 GB over 10M rows. Without it, memory stays bounded by the chunk.
    parquet = pq.ParquetFile(source, pre_buffer=False)

    for batch in parquet.iter_batches(batch_size=batch_size, columns=columns):
        yield batch.to_pandas(types_mapper=ARROW_BACKED.get)


# Text columns stay in Arrow memory (no Python object per cell): missing checks, counting and
# grouping then run in Arrow's compute kernels.
ARROW_BACKED = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}


def read_parquet_sample(source: Any, *, columns: list[str], max_rows: int, seed: int = 0) -> pd.DataFrame:
    """The named columns, or a seeded uniform sample of max_rows of their rows.

    The sample is drawn while the file is read chunk by chunk, so memory holds the sample and one
    chunk, never the whole column.
    """
    total = pq.ParquetFile(source).metadata.num_rows
    if total <= max_rows:
        return pq.read_table(source, columns=columns).to_pandas(types_mapper=ARROW_BACKED.get)
    keep = np.sort(np.random.default_rng(seed).choice(total, size=max_rows, replace=False))
    pieces, start = [], 0
    for chunk in iter_parquet_chunks(source, columns=columns):
        end = start + len(chunk)
        wanted = keep[np.searchsorted(keep, start) : np.searchsorted(keep, end)] - start
        if len(wanted):
            pieces.append(chunk.iloc[wanted])
        start = end
    return pd.concat(pieces, ignore_index=True)
