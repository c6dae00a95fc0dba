from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils.html import format_html

from governance.admin import RecordAdmin
from reports.models import Report, SignOff


class SignOffInline(admin.TabularInline):
    model = SignOff
    extra = 0
    readonly_fields = ("signed_by", "role", "statement", "report_sha256", "signed_at")
    fields = readonly_fields
    can_delete = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Report)
class ReportAdmin(RecordAdmin):
    inlines = [SignOffInline]
    list_display = ["title", "version", "organization", "created_at", "short_sha256", "open_link"]
    list_filter = ["organization"]
    exclude = ["html", "data"]
    readonly_fields = [
        "organization",
        "audit_run",
        "version",
        "title",
        "sha256",
        "created_by",
        "created_at",
        "open_link",
    ]

    @admin.display(description="sha256")
    def short_sha256(self, obj: Report) -> str:
        return obj.sha256[:12]

    @admin.display(description="Report")
    def open_link(self, obj: Report) -> str:
        return format_html('<a href="/reports/{}/">open</a>', obj.pk)
