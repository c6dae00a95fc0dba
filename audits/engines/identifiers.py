"""A scan for direct identifiers (HIPAA Safe Harbor, 45 CFR 164.514(b)(2)) in an uploaded table.

Two kinds of evidence: a column name that says what it holds (ssn, mrn, email, date_of_birth,
zip...), and values that look like an identifier (SSN, e-mail, US phone number, full date,
5-digit ZIP, record-number-like codes). Values are checked on a sample of each column. The
result names columns and kinds only, never a value, so it can be logged and reported.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

SAMPLE_VALUES = 2000
# A column is flagged on its values when at least this share of its sampled non-empty values match.
VALUE_SHARE = 0.5

NAME_PATTERNS: dict[str, re.Pattern[str]] = {
    "ssn": re.compile(r"(^|_)(ssn|social_?security(_?(number|no))?)($|_)"),
    "medical_record_number": re.compile(
        r"(^|_)(mrn|medical_?record(_?(number|no|id))?|patient_?(id|nbr|number|no))($|_)"
    ),
    "name": re.compile(r"(^|_)((first|last|middle|family|given|full|patient)_?name|surname)($|_)"),
    "phone": re.compile(r"(^|_)(phone|telephone|mobile|fax)(_?(number|no))?($|_)"),
    "email": re.compile(r"(^|_)e_?mail(_?address)?($|_)"),
    "date_of_birth": re.compile(r"(^|_)(dob|date_?of_?birth|birth_?date|birthdate|birthday)($|_)"),
    "zip_code": re.compile(r"(^|_)(zip|zip_?code|postal_?code|postcode)($|_)"),
    "address": re.compile(r"(^|_)(street|address|addr)(_?line)?(_?\d)?($|_)"),
    "health_plan_number": re.compile(r"(^|_)(member_?id|beneficiary_?(id|number)|policy_?number)($|_)"),
}
VALUE_PATTERNS: dict[str, re.Pattern[str]] = {
    "ssn": re.compile(r"^\d{3}-\d{2}-\d{4}$"),
    "email": re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"),
    "phone": re.compile(r"^(\+?1[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}$"),
    "full_date": re.compile(r"^(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4})([ T]\d{2}:\d{2}(:\d{2})?)?$"),
}
ZIP_VALUE = re.compile(r"^\d{5}(-\d{4})?$")
# Record numbers: short letter prefixes and 6 to 10 digits, nearly one per row.
RECORD_NUMBER_VALUE = re.compile(r"^[A-Za-z]{0,3}-?\d{6,10}$")
RECORD_NUMBER_DISTINCT = 0.9


@dataclass(frozen=True)
class IdentifierHit:
    column: str
    kind: str
    evidence: str  # "column name" or "values"
    share: float | None  # share of sampled values that match, for value evidence
    severity: str


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def scan_identifiers(table: pa.Table) -> list[dict[str, Any]]:
    """Direct identifiers in a table's column names and values; a dict per hit, with no value in it."""
    hits: list[IdentifierHit] = []
    for name in table.column_names:
        normalised = _normalise(name)
        name_kinds = [kind for kind, pattern in NAME_PATTERNS.items() if pattern.search(normalised)]
        column = table.column(name)
        for kind in name_kinds:
            if kind == "zip_code":
                # Safe Harbor allows 3-digit ZIPs: flag only a column that holds 5-digit ones.
                share = _zip_share(column)
                if share >= VALUE_SHARE:
                    hits.append(IdentifierHit(name, kind, "column name and values", round(share, 3), "critical"))
            else:
                hits.append(IdentifierHit(name, kind, "column name", None, "critical"))
        if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
            severity = "critical" if "date_of_birth" in name_kinds else "warning"
            hits.append(IdentifierHit(name, "full_date", "values", 1.0, severity))
            continue
        if "medical_record_number" not in name_kinds and _looks_like_record_numbers(column):
            hits.append(IdentifierHit(name, "record_number_like", "values", None, "warning"))
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        values = [v for v in column.slice(0, SAMPLE_VALUES * 2).to_pylist() if v not in (None, "")][:SAMPLE_VALUES]
        if not values:
            continue
        for kind, pattern in VALUE_PATTERNS.items():
            share = sum(1 for v in values if pattern.match(v.strip())) / len(values)
            if share >= VALUE_SHARE and kind not in name_kinds:
                # Dates other than the year are identifiers under Safe Harbor; a date of birth is the worst.
                severity = "warning" if kind == "full_date" and "date_of_birth" not in name_kinds else "critical"
                hits.append(IdentifierHit(name, kind, "values", round(share, 3), severity))
    return [asdict(hit) for hit in hits]


def _looks_like_record_numbers(column: pa.ChunkedArray) -> bool:
    """Integer or text codes of 6 to 10 digits, nearly all distinct: an MRN, account or encounter number."""
    if not (
        pa.types.is_integer(column.type) or pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
    ):
        return False
    values = [str(v) for v in column.slice(0, SAMPLE_VALUES).to_pylist() if v not in (None, "")]
    if len(values) < 20:
        return False
    matching = sum(1 for v in values if RECORD_NUMBER_VALUE.match(v.strip()))
    return matching / len(values) >= VALUE_SHARE and len(set(values)) / len(values) >= RECORD_NUMBER_DISTINCT


def _zip_share(column: pa.ChunkedArray) -> float:
    """Share of sampled values that are 5-digit ZIPs (as text, or as numbers that lost a leading zero)."""
    values = [v for v in column.slice(0, SAMPLE_VALUES * 2).to_pylist() if v not in (None, "")][:SAMPLE_VALUES]
    if not values:
        return 0.0
    if pa.types.is_integer(column.type):
        return sum(1 for v in values if 1000 <= v <= 99999) / len(values)
    return sum(1 for v in values if ZIP_VALUE.match(str(v).strip())) / len(values)
