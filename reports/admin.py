from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from governance.admin import OrganizationScopedAdmin
from reports.models import Report


@admin.register(Report)
class ReportAdmin(OrganizationScopedAdmin):
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.method in ("GET", "HEAD")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
