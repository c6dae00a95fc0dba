"""Reads of audit runs, scoped to what the caller may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from audits.models import AuditRun
from governance.models import ApiToken
from governance.selectors import organizations_visible


def audit_runs_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[AuditRun]:
    return AuditRun.objects.filter(organization__in=organizations_visible(user, token=token)).select_related(
        "organization", "model_version", "model_version__ai_model", "dataset", "reference_dataset"
    )
