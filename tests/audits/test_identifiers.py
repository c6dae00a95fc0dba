"""The direct-identifier scan: names and value patterns, and nothing flagged that is not one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa

from audits.engines.identifiers import scan_identifiers


def _table() -> pa.Table:
    n = 200
    rng = np.random.default_rng(1)
    return pa.Table.from_pandas(
        pd.DataFrame(
            {
                "contact": [f"pat{i}@example.org" for i in range(n)],
                "Patient SSN": [
                    f"{rng.integers(100, 999)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}" for _ in range(n)
                ],
                "callback": [f"(617) 555-{1000 + i:04d}" for i in range(n)],
                "DOB": [f"19{50 + i % 40}-0{1 + i % 9}-1{i % 9}" for i in range(n)],
                "admitted": [f"2024-0{1 + i % 9}-2{i % 9}" for i in range(n)],
                "zip_code": [f"0{2100 + i}" for i in range(n)],
                "mrn": rng.integers(10**6, 10**7, n),
                "lab_code": [f"{10000 + i}" for i in range(n)],  # five digits, but not a ZIP by name
                "ward": rng.choice(["icu", "medical"], n),
                "zip_3digit": [f"{21 + i % 9:03d}" for i in range(n)],  # 3-digit ZIPs are allowed
                "age": rng.integers(18, 90, n),
                "encounter": rng.choice(10**9, n, replace=False) + 10**8,  # unnamed, but one 9-digit code per row
                "drg_code": rng.choice([470, 871, 291, 392], n),  # repeated codes are not record numbers
            }
        ),
        preserve_index=False,
    )


def test_it_finds_identifiers_by_name_and_by_value_and_nothing_else() -> None:
    hits = {(h["column"], h["kind"], h["evidence"]): h["severity"] for h in scan_identifiers(_table())}
    assert hits == {
        ("contact", "email", "values"): "critical",
        ("Patient SSN", "ssn", "column name"): "critical",
        ("callback", "phone", "values"): "critical",
        ("DOB", "date_of_birth", "column name"): "critical",
        ("DOB", "full_date", "values"): "critical",
        ("admitted", "full_date", "values"): "warning",
        ("zip_code", "zip_code", "column name and values"): "critical",
        ("mrn", "medical_record_number", "column name"): "critical",
        ("encounter", "record_number_like", "values"): "warning",
    }


def test_the_scan_never_carries_a_value() -> None:
    table = _table()
    text = json.dumps(scan_identifiers(table))
    for column in ("contact", "Patient SSN", "callback", "DOB", "zip_code"):
        assert table.column(column)[0].as_py() not in text
