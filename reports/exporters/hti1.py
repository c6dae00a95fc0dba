"""The HTI-1 source attributes of a model as CSV, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from typing import Any

COLUMNS = ("group", "group_name", "key", "label", "value", "source", "evidence", "reviewed_by", "reviewed_at")
# A cell starting with one of these is read as a formula by Excel, LibreOffice and Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> str:
    """The cell as text, with a leading apostrophe when a spreadsheet would take it for a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def hti1_csv(profile: dict[str, Any]) -> str:
    """One row per attribute, in the rule's order, with the completeness in a comment-free header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for row in profile["attributes"]:
        writer.writerow([spreadsheet_safe(row[column]) for column in COLUMNS])
    return buffer.getvalue()
