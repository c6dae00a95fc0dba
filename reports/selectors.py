"""Reads of reports, scoped to what the caller may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from governance.models import ApiToken
from governance.selectors import organizations_visible
from reports.models import Report


def reports_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[Report]:
    return Report.objects.filter(organization__in=organizations_visible(user, token=token)).select_related(
        "organization", "audit_run"
    )
