"""The model inventory: the AI models list of the admin as a governance committee reads it.

Every model with its lifecycle stage, last audit verdict, open critical findings, overdue schedules and
HTI-1 completeness; the counted columns are annotations, so they sort, and the filters use them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.html import format_html


def inventory_queryset(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """The models with the inventory's figures as annotations."""
    from audits.models import Alert, AuditRun, AuditSchedule
    from governance.models import ModelVersion

    versions = ModelVersion.objects.filter(ai_model=OuterRef("pk"))
    runs = AuditRun.objects.filter(model_version__ai_model=OuterRef("pk"), status=AuditRun.Status.SUCCEEDED)
    return queryset.annotate(
        latest_stage=Subquery(versions.order_by("-created_at", "-pk").values("stage")[:1]),
        deployed_version=Subquery(
            versions.filter(stage=ModelVersion.Stage.DEPLOYED).order_by("-stage_changed_at").values("version")[:1]
        ),
        last_verdict=Subquery(runs.order_by("-finished_at", "-pk").values("verdict")[:1]),
        last_audit_at=Subquery(runs.order_by("-finished_at", "-pk").values("finished_at")[:1]),
        # Counted as 0, not NULL, where there is none: NULL sorts first in descending order on PostgreSQL.
        open_critical=Coalesce(
            Subquery(
                Alert.objects.filter(
                    ai_model=OuterRef("pk"), kind=Alert.Kind.CRITICAL_FINDING, resolved_at__isnull=True
                )
                .values("ai_model")
                .annotate(c=Count("pk"))
                .values("c")[:1]
            ),
            0,
        ),
        overdue_schedules=Coalesce(
            Subquery(
                AuditSchedule.objects.filter(ai_model=OuterRef("pk"), enabled=True, overdue_since__isnull=False)
                .values("ai_model")
                .annotate(c=Count("pk"))
                .values("c")[:1]
            ),
            0,
        ),
    )


class LastVerdictFilter(admin.SimpleListFilter):
    title = "last audit verdict"
    parameter_name = "verdict"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("fail", "Fail"), ("pass", "Pass"), ("none", "Never audited")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "none":
            return queryset.filter(last_verdict__isnull=True)
        if self.value() in ("pass", "fail"):
            return queryset.filter(last_verdict=self.value())
        return queryset


class AttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("critical", "Open critical findings"), ("overdue", "Overdue schedules"), ("any", "Either")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        critical, overdue = Q(open_critical__gt=0), Q(overdue_schedules__gt=0)
        chosen = {"critical": critical, "overdue": overdue, "any": critical | overdue}.get(self.value() or "")
        return queryset.filter(chosen) if chosen is not None else queryset


class InventoryColumns:
    """The inventory's columns for the AI model admin."""

    inventory_display: tuple[str, ...] = (
        "name",
        "organization",
        "stage",
        "verdict",
        "critical",
        "overdue",
        "hti1",
        "clinical_risk_level",
        "owner",
    )
    inventory_filters: list[Any] = [AttentionFilter, LastVerdictFilter, "organization", "clinical_risk_level"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return inventory_queryset(super().get_queryset(request))  # type: ignore[misc]

    @admin.display(description="Lifecycle stage", ordering="latest_stage")
    def stage(self, obj: Any) -> str:
        if obj.deployed_version:
            return f"deployed ({obj.deployed_version})"
        return obj.latest_stage or "no version"

    @admin.display(description="Last audit", ordering="last_audit_at")
    def verdict(self, obj: Any) -> str:
        if not obj.last_verdict:
            return "—"
        colour = "#b42318" if obj.last_verdict == "fail" else "#1a7f37"
        return format_html(
            '<strong style="color: {}">{}</strong> {}',
            colour,
            obj.last_verdict.upper(),
            f"{obj.last_audit_at:%Y-%m-%d}",
        )

    @admin.display(description="Open critical findings", ordering="open_critical")
    def critical(self, obj: Any) -> int:
        return obj.open_critical or 0

    @admin.display(description="Overdue schedules", ordering="overdue_schedules")
    def overdue(self, obj: Any) -> int:
        return obj.overdue_schedules or 0

    @admin.display(description="HTI-1")
    def hti1(self, obj: Any) -> str:
        from django.urls import reverse

        from reports.services import hti1_profile

        completeness = hti1_profile(obj)["completeness"]
        return format_html(
            '<a href="{}">{} of {}</a>',
            reverse("admin:reports_sourceattribute_profile", args=[obj.pk]),
            completeness["filled"],
            completeness["of"],
        )
