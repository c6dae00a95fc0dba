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

from governance.admin_site import may
from governance.models import APPROVE_ROLES, WRITE_ROLES


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
        "overview",
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

    @admin.display(description="Page")
    def overview(self, obj: Any) -> str:
        from django.urls import reverse

        return format_html(
            '<a href="{}" aria-label="Overview of {}">overview</a>',
            reverse("admin:governance_aimodel_overview", args=[obj.pk]),
            obj.name,
        )

    def get_urls(self) -> list[Any]:
        from django.urls import path

        return [
            path(
                "<int:model_id>/overview/",
                self.admin_site.admin_view(self.overview_view),  # type: ignore[attr-defined]
                name="governance_aimodel_overview",
            ),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def overview_view(self, request: HttpRequest, model_id: int) -> Any:
        from django.shortcuts import get_object_or_404
        from django.template.response import TemplateResponse

        ai_model = get_object_or_404(self.get_queryset(request), pk=model_id)
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            **model_overview_context(ai_model),
            "can_write": may(request, WRITE_ROLES, ai_model.organization_id),
            "can_approve": may(request, APPROVE_ROLES, ai_model.organization_id),
            "title": ai_model.name,
            "opts": ai_model._meta,
        }
        return TemplateResponse(request, "admin/governance/model_overview.html", context)

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


def model_overview_context(ai_model: Any, *, days: int = 180) -> dict[str, Any]:
    """What the model page shows: versions, data, policy, schedules, trends with charts, alerts and reports.

    The trends and history are those of a monitoring report of the last `days` days (small groups
    unpublished), drawn by the same chart code.
    """
    from datetime import timedelta

    from django.utils import timezone

    from audits.models import AuditRun, AuditSchedule
    from audits.services.policies import audit_policy_for_model
    from governance.models import Dataset
    from reports.charts import trend_charts
    from reports.models import Report
    from reports.services.monitoring import monitoring_report_data

    today = timezone.now().date()
    data = monitoring_report_data(ai_model=ai_model, start=today - timedelta(days=days), end=today + timedelta(days=1))
    versions = []
    for version in ai_model.versions.order_by("-created_at"):
        latest = version.audit_runs.filter(status=AuditRun.Status.SUCCEEDED).order_by("-finished_at").first()
        versions.append({"version": version, "latest_run": latest})
    policy = audit_policy_for_model(ai_model).to_dict()
    return {
        "ai_model": ai_model,
        "versions": versions,
        "datasets": Dataset.objects.filter(ai_model=ai_model).order_by("-created_at"),
        "policy": policy,
        "bounds": sorted(policy["bounds"].items()),
        "schedules": AuditSchedule.objects.filter(ai_model=ai_model),
        "data": data,
        "charts": trend_charts(data),
        "days": days,
        "reports": Report.objects.filter(Q(audit_run__model_version__ai_model=ai_model) | Q(ai_model=ai_model))
        .select_related("audit_run")
        .order_by("-created_at")[:20],
    }
