"""Audit runs in the admin: start one, watch it, read its results."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

# Registers the monitoring admin (production stream, schedules, alerts).
from audits import admin_monitoring  # noqa: F401
from audits.models import AuditPolicy, AuditRun, Finding, FindingReview
from audits.selectors import audit_run_progress
from audits.services import audit_policy_update, audit_run_create
from audits.services.triage import finding_triage
from governance.admin_site import (
    NOBODY,
    OrganizationScopedAdmin,
    ReadOnlyInline,
    form_page,
    limit_choices,
    may,
    organizations_where,
    require,
)
from governance.models import APPROVE_ROLES, OWNER_ROLES, WRITE_ROLES, Dataset, ModelVersion, Organization
from governance.services import ServiceError
from reports.services import report_generate_for_run


class StartAuditForm(forms.Form):
    model_version = forms.ModelChoiceField(queryset=ModelVersion.objects.none())
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.none(), help_text="The data the model is judged on")
    reference_dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.none(),
        required=False,
        help_text="The reference population for drift, usually the training data",
    )

    def __init__(self, *args: Any, organizations: QuerySet[Organization], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # What the requester may audit: the versions and data of organizations where they hold a writing role.
        limit_choices(self, "model_version", ModelVersion.objects.filter(ai_model__organization__in=organizations))
        limit_choices(self, "dataset", Dataset.objects.filter(organization__in=organizations))
        limit_choices(self, "reference_dataset", Dataset.objects.filter(organization__in=organizations))


@admin.register(AuditRun)
class AuditRunAdmin(OrganizationScopedAdmin):
    list_display = [
        "id",
        "model_version",
        "dataset",
        "reference_dataset",
        "status",
        "verdict",
        "schedule",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "verdict", "organization", ("schedule", admin.EmptyFieldListFilter)]
    list_select_related = ["model_version__ai_model", "dataset", "reference_dataset", "schedule"]
    change_form_template = "admin/audits/auditrun/run_page.html"
    # A run is started (add), never edited; re-running and reports need a writing role too.
    change_roles = NOBODY

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:run_id>/report/", self.admin_site.admin_view(self.generate_report), name="audits_auditrun_report"
            ),
            path("<int:run_id>/rerun/", self.admin_site.admin_view(self.rerun), name="audits_auditrun_rerun"),
            path(
                "<int:run_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="audits_auditrun_progress",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StartAuditForm(
            request.POST or None,
            initial=request.GET.dict(),
            organizations=organizations_where(request, self.add_roles),
        )
        if request.method == "POST" and form.is_valid():
            try:
                run = audit_run_create(actor=request.user, **form.cleaned_data)
            except (ServiceError, PermissionDenied) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Audit run {run.pk} queued")
                return HttpResponseRedirect(reverse("admin:audits_auditrun_change", args=[run.pk]))
        return form_page(self, request, form, title="Start an audit", submit_label="Start audit")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        run = get_object_or_404(self.get_queryset(request), pk=object_id)
        context = {
            **self.admin_site.each_context(request),
            "title": str(run),
            "run": run,
            "opts": self.model._meta,
            "reports": run.reports.all(),
            "findings": run.findings.all(),
            "data": {"result": run.result or {}},
            "progress": audit_run_progress(run),
            "can_write": may(request, WRITE_ROLES, run.organization_id),
            "can_approve": may(request, APPROVE_ROLES, run.organization_id),
        }
        return TemplateResponse(request, self.change_form_template, context)

    def progress_view(self, request: HttpRequest, run_id: int) -> HttpResponse:
        """The run's status block, polled by the run page (htmx) while the run is queued or running.

        Once the run has finished, the page is told to reload itself (HX-Refresh) to show the results.
        """
        run = get_object_or_404(self.get_queryset(request).select_related("dataset", "reference_dataset"), pk=run_id)
        context = {"run": run, "progress": audit_run_progress(run)}
        response = TemplateResponse(request, "admin/audits/auditrun/_progress.html", context)
        if run.is_finished and request.headers.get("HX-Request"):
            response["HX-Refresh"] = "true"
        return response

    def rerun(self, request: HttpRequest, run_id: int) -> HttpResponse:
        """A new run of the same version on the same data (POST only: the page asks for confirmation)."""
        run = get_object_or_404(self.get_queryset(request), pk=run_id)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:audits_auditrun_change", args=[run.pk]))
        require(request, WRITE_ROLES, run.organization_id, doing="Running an audit again")
        try:
            again = audit_run_create(
                model_version=run.model_version,
                dataset=run.dataset,
                reference_dataset=run.reference_dataset,
                actor=request.user,
            )
        except (ServiceError, PermissionDenied) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:audits_auditrun_change", args=[run.pk]))
        self.message_user(request, f"Audit run {again.pk} queued")
        return HttpResponseRedirect(reverse("admin:audits_auditrun_change", args=[again.pk]))

    def generate_report(self, request: HttpRequest, run_id: int) -> HttpResponse:
        run = get_object_or_404(self.get_queryset(request), pk=run_id)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:audits_auditrun_change", args=[run.pk]))
        require(request, WRITE_ROLES, run.organization_id, doing="Generating a report")
        try:
            report = report_generate_for_run(run=run, actor=request.user)
        except (ServiceError, PermissionDenied) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"Report v{report.version} generated, sha256 {report.sha256}")
        return HttpResponseRedirect(reverse("admin:audits_auditrun_change", args=[run.pk]))


@admin.register(AuditPolicy)
class AuditPolicyAdmin(OrganizationScopedAdmin):
    organization_path = "ai_model__organization"
    # A policy comes with its model; owners, approvers and admins change it.
    add_roles = NOBODY
    change_roles = OWNER_ROLES
    list_display = [
        "ai_model",
        "min_group_size",
        "ci_rule",
        "correction",
        "operating_point",
        "updated_at",
        "updated_by",
    ]
    readonly_fields = ["updated_at", "updated_by"]

    def save_model(self, request: HttpRequest, obj: AuditPolicy, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in obj.as_dict() if name in form.cleaned_data}
        saved = audit_policy_update(ai_model=obj.ai_model, actor=request.user, **fields)
        obj.pk = saved.pk
        obj._state.adding = False


class FindingReviewInline(ReadOnlyInline):
    model = FindingReview
    readonly_fields = ("action", "from_status", "to_status", "justification", "reviewed_by", "reviewed_at")
    fields = readonly_fields


class FindingTriageForm(forms.Form):
    CHOICES = [
        ("acknowledge", "Acknowledge: seen, being looked at"),
        ("mitigate", "Mitigate: say what was done"),
        ("accept_risk", "Accept the risk (approver): say why it is acceptable"),
        ("reopen", "Reopen: say what changed"),
    ]
    action = forms.ChoiceField(choices=CHOICES)
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), required=False)

    def __init__(self, *args: Any, may_accept_risk: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only an approver may accept a risk: the others are not offered it.
        if not may_accept_risk:
            self.fields["action"].choices = [c for c in self.CHOICES if c[0] != "accept_risk"]  # type: ignore[attr-defined]


@admin.register(Finding)
class FindingAdmin(OrganizationScopedAdmin):
    organization_path = "run__organization"
    list_display = ["severity", "message", "run", "review_status", "created_at", "triage_link"]
    list_filter = ["severity", "category", "review_status"]
    search_fields = ["message", "attribute", "group", "column"]
    # The review status changes only through triage, which records who, when and why.
    readonly_fields = [*(f.name for f in Finding._meta.fields), "triage_link"]
    inlines = [FindingReviewInline]
    add_roles = change_roles = NOBODY

    @admin.display(description="Triage")
    def triage_link(self, obj: Finding) -> str:
        return format_html('<a href="{}">triage</a>', reverse("admin:audits_finding_triage", args=[obj.pk]))

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:finding_id>/triage/", self.admin_site.admin_view(self.triage_view), name="audits_finding_triage"
            ),
            *super().get_urls(),
        ]

    def triage_view(self, request: HttpRequest, finding_id: int) -> HttpResponse:
        finding = get_object_or_404(self.get_queryset(request).select_related("run__organization"), pk=finding_id)
        require(request, WRITE_ROLES, finding.run.organization_id, doing="Triaging a finding")
        form = FindingTriageForm(
            request.POST or None, may_accept_risk=may(request, APPROVE_ROLES, finding.run.organization_id)
        )
        if request.method == "POST" and form.is_valid():
            try:
                finding_triage(finding=finding, actor=request.user, **form.cleaned_data)
            except (ServiceError, PermissionDenied) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Finding {finding.pk}: {finding.get_review_status_display().lower()}")
                return HttpResponseRedirect(reverse("admin:audits_finding_change", args=[finding.pk]))
        return form_page(
            self, request, form, title=f"Triage: {finding.message[:120]}", submit_label="Record the decision"
        )
