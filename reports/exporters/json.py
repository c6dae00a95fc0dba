"""A report as JSON in a versioned envelope (reports/exporters/schemas/report-v2.schema.json)."""

from __future__ import annotations

from typing import Any

SCHEMA = "clinical-ai-governance/report"
SCHEMA_VERSION = 2


def report_json(report: Any, *, raw: bool = False) -> dict[str, Any]:
    """The published (suppressed) data of a report; with raw, the audit's unsuppressed result beside it."""
    body: dict[str, Any] = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "report": report.pk,
        "version": report.version,
        "kind": report.kind,
        "title": report.title,
        "sha256": report.sha256,
        "created_at": report.created_at.isoformat(),
        "data": report.data,
    }
    if raw:
        body.update(raw=True, raw_result=report.audit_run.result)
    return body
