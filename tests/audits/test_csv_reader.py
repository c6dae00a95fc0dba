"""The CSV reader (Arrow's multi-threaded parser) types every column as pandas' `read_csv` does, which it
replaced: the reference here is pandas itself, on generated files of every kind of column the uploads meet.
Types and values must agree exactly, so that a file uploaded today is stored as it was before."""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audits.engines.errors import TableError
from audits.engines.tables import CSV_MISSING_VALUES, read_table

MISSING = st.sampled_from(["", "NA", "NaN", "null", "#N/A"])
COLUMNS = {
    "ints": st.integers(-(10**12), 10**12).map(str),
    "ints or missing": st.one_of(st.integers(-1000, 1000).map(str), MISSING),
    "floats": st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    "floats, infinities, missing": st.one_of(st.floats(-1e6, 1e6).map(repr), st.sampled_from(["inf", "-inf"]), MISSING),
    "booleans": st.sampled_from(["True", "False", "true", "false", "TRUE", "FALSE"]),
    # A cell of spaces alone is a value; pandas drops a line holding nothing else as blank (one known
    # difference, where the reader keeps the row, the more faithful of the two).
    "words": st.text(alphabet='abcxyz ,"\n', min_size=1, max_size=6).filter(str.strip),
    "dates": st.dates().map(str),
    "timestamps": st.datetimes().map(lambda d: d.isoformat() + "Z"),
    "zeros and ones": st.sampled_from(["0", "1"]),
    "numbers then a word": st.one_of(st.integers(0, 9).map(str), st.just("n/a-ish")),
}


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n') else cell


@st.composite
def csv_files(draw: Any) -> bytes:
    names = draw(st.lists(st.sampled_from(sorted(COLUMNS)), min_size=1, max_size=5, unique=True))
    rows = draw(st.integers(1, 40))
    columns = {name: [draw(COLUMNS[name]) for _ in range(rows)] for name in names}
    lines = [",".join(_quote(n) for n in names)] + [",".join(_quote(columns[n][i]) for n in names) for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _pandas(raw: bytes) -> pa.Table:
    # round_trip: pandas' exact float parser. Its default one can be off in the last digit (about 1e-16
    # relative); Arrow's parser is exact, so the reader now stores the very number written.
    frame = pd.read_csv(
        io.StringIO(raw.decode("utf-8-sig")),
        low_memory=False,
        keep_default_na=False,
        na_values=list(CSV_MISSING_VALUES),
        float_precision="round_trip",
    )
    return pa.Table.from_pandas(frame, preserve_index=False)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


@settings(max_examples=300, deadline=None)
@given(raw=csv_files())
def test_the_reader_types_and_reads_every_column_as_pandas_does(raw: bytes) -> None:
    try:
        expected = _pandas(raw)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return  # pandas could not store it faithfully either (the old reader refused it)
    if expected.num_rows == 0:  # blank lines only: refused, as before
        with pytest.raises(TableError, match="no rows"):
            read_table(io.BytesIO(raw), filename="x.csv")
        return
    table = read_table(io.BytesIO(raw), filename="x.csv").table
    assert table.schema.names == expected.schema.names
    for name in expected.schema.names:
        mine, theirs = table.column(name), expected.column(name)
        # pandas reads a column of nothing but missing values as floats; so does the reader.
        assert mine.type == theirs.type, (name, mine.type, theirs.type)
        mine_values, their_values = mine.to_pylist(), theirs.to_pylist()
        assert all(_same(a, b) for a, b in zip(mine_values, their_values, strict=True)), name
