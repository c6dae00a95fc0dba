from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from governance.admin_site import NOBODY, OrganizationScopedAdmin, ReadOnlyInline, RecordAdmin, form_page, may, require
from governance.models import APPROVE_ROLES, WRITE_ROLES
from governance.selectors import ai_models_visible
from governance.services import ServiceError
from reports.models import Report, SignOff, SourceAttribute
from reports.services import hti1_profile, report_sign, source_attribute_record


class SignOffInline(ReadOnlyInline):
    model = SignOff
    readonly_fields = ("signed_by", "role", "statement", "report_sha256", "signed_at")
    fields = readonly_fields


class SignForm(forms.Form):
    statement = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        help_text="What you attest, e.g. 'Reviewed by the AI committee on 2026-11-25; approved for a pilot on ward 4'",
    )
    confirm = forms.BooleanField(label="I have read this report version and sign it as it is")


@admin.register(Report)
class ReportAdmin(RecordAdmin):
    inlines = [SignOffInline]

    def get_urls(self) -> list[Any]:
        return [
            path("<int:report_id>/sign/", self.admin_site.admin_view(self.sign_view), name="reports_report_sign"),
            *super().get_urls(),
        ]

    def sign_view(self, request: HttpRequest, report_id: int) -> HttpResponse:
        """Sign a report version (approver or admin), bound to its sha256, after an explicit confirmation."""
        report = get_object_or_404(self.get_queryset(request), pk=report_id)
        require(request, APPROVE_ROLES, report.organization_id, doing="Signing a report")
        form = SignForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                report_sign(report=report, actor=request.user, statement=form.cleaned_data["statement"])
            except (ServiceError, PermissionDenied) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Signed {report.title} v{report.version} (sha256 {report.sha256})")
                return HttpResponseRedirect(reverse("admin:reports_report_change", args=[report.pk]))
        return form_page(self, request, form, title=f"Sign {report.title} v{report.version}", submit_label="Sign")

    list_display = ["title", "version", "organization", "created_at", "short_sha256", "open_link"]
    list_filter = ["organization"]
    exclude = ["html", "data"]
    readonly_fields = [
        "organization",
        "kind",
        "audit_run",
        "ai_model",
        "period_start",
        "period_end",
        "version",
        "title",
        "sha256",
        "created_by",
        "created_at",
        "open_link",
        "pdf_link",
    ]

    @admin.display(description="PDF")
    def pdf_link(self, obj: Report) -> str:
        return format_html('<a href="{}">download</a>', reverse("report-pdf", args=[obj.pk]))

    @admin.display(description="sha256")
    def short_sha256(self, obj: Report) -> str:
        return obj.sha256[:12]

    @admin.display(description="Report")
    def open_link(self, obj: Report) -> str:
        return format_html('<a href="/reports/{}/">open</a>', obj.pk)


class Hti1ProfileForm(forms.Form):
    """A value and its evidence for each of the 31 attributes; empty values fall back to the derived text."""

    def __init__(self, *args: Any, profile: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rows = profile["attributes"]
        for row in self.rows:
            recorded = row["source"] == "recorded"
            self.fields[f"{row['key']}__value"] = forms.CharField(
                label=row["label"],
                required=False,
                initial=row["value"] if recorded else "",
                widget=forms.Textarea(attrs={"rows": 2, "cols": 80}),
            )
            self.fields[f"{row['key']}__evidence"] = forms.CharField(
                label="Evidence",
                required=False,
                max_length=500,
                initial=row["evidence"] if recorded else "",
                widget=forms.TextInput(attrs={"size": 80, "placeholder": "Link or reference"}),
            )

    def sections(self) -> list[dict[str, Any]]:
        """The attributes by group, each with its two fields and what the service derived."""
        groups: dict[int, dict[str, Any]] = {}
        for row in self.rows:
            group = groups.setdefault(row["group"], {"name": row["group_name"], "number": row["group"], "rows": []})
            group["rows"].append(
                {**row, "value_field": self[f"{row['key']}__value"], "evidence_field": self[f"{row['key']}__evidence"]}
            )
        return list(groups.values())


@admin.register(SourceAttribute)
class SourceAttributeAdmin(OrganizationScopedAdmin):
    """The HTI-1 page of each model: the list is of models with their completeness; each opens a form."""

    organization_path = "ai_model__organization"
    add_roles = NOBODY

    def get_urls(self) -> list[Any]:
        return [
            path(
                "model/<int:model_id>/",
                self.admin_site.admin_view(self.profile_view),
                name="reports_sourceattribute_profile",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        models = ai_models_visible(request.user).order_by("organization__name", "name")
        rows = [{"model": m, "completeness": hti1_profile(m)["completeness"]} for m in models]
        context = {
            **self.admin_site.each_context(request),
            "title": "HTI-1 source attributes",
            "rows": rows,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/reports/hti1_models.html", context)

    def profile_view(self, request: HttpRequest, model_id: int) -> HttpResponse:
        ai_model = get_object_or_404(ai_models_visible(request.user), pk=model_id)
        profile = hti1_profile(ai_model)
        can_write = may(request, WRITE_ROLES, ai_model.organization_id)
        form = Hti1ProfileForm(request.POST or None, profile=profile)
        for field in form.fields.values():
            field.disabled = not can_write
        if request.method == "POST":
            require(request, WRITE_ROLES, ai_model.organization_id, doing="Recording HTI-1 source attributes")
        if request.method == "POST" and form.is_valid():
            changed = 0
            try:
                for row in profile["attributes"]:
                    value = form.cleaned_data[f"{row['key']}__value"].strip()
                    evidence = form.cleaned_data[f"{row['key']}__evidence"].strip()
                    recorded = row["source"] == "recorded"
                    before = (row["value"], row["evidence"]) if recorded else ("", "")
                    if (value, evidence) != before and (value or recorded):
                        source_attribute_record(
                            ai_model=ai_model, key=row["key"], value=value, evidence=evidence, actor=request.user
                        )
                        changed += 1
            except (ServiceError, PermissionDenied) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{changed} attribute(s) recorded with you as reviewer")
                return HttpResponseRedirect(reverse("admin:reports_sourceattribute_profile", args=[ai_model.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"HTI-1 source attributes of {ai_model.name}",
            "ai_model": ai_model,
            "profile": profile,
            "form": form,
            "can_write": can_write,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/reports/hti1_profile.html", context)
