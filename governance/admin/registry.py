"""The registry in the admin: organizations and their members, models and their versions.

Writes go through the services, as they do from the API.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from governance import services
from governance.admin.inventory import InventoryColumns
from governance.admin_site import (
    OrganizationScopedAdmin,
    ReadOnlyInline,
    may,
)
from governance.models import (
    ADMIN_ROLES,
    ALL_ROLES,
    APPROVE_ROLES,
    AIModel,
    Membership,
    ModelVersion,
    Organization,
)


class MembershipForm(forms.ModelForm):
    # A username rather than a list of every account: an admin of one hospital does not browse the others' staff.
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True),
        to_field_name="username",
        widget=forms.TextInput(attrs={"size": 24}),
        help_text="Username of an existing account",
        error_messages={"invalid_choice": "No active account has that username."},
    )

    class Meta:
        model = Membership
        fields = ["user", "role"]


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    extra = 1

    # Django asks without an organization too (to build the rows' queryset, which it then filters by organization).
    def _admin_here(self, request: HttpRequest, obj: Organization | None) -> bool:
        return may(request, ADMIN_ROLES, None if obj is None else obj.pk)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return may(request, ALL_ROLES, None if obj is None else obj.pk)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._admin_here(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._admin_here(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._admin_here(request, obj)


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    organization_path = ""
    change_roles = ADMIN_ROLES
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A new organization is a new tenant: set up by the service's operators.
        return bool(request.user.is_superuser)

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            services.event_record(
                organization=obj,
                actor=request.user,
                action="organization.changed",
                obj=obj,
                after={"name": obj.name, "slug": obj.slug},
            )
        else:
            created = services.organization_create(name=obj.name, slug=obj.slug, creator=request.user)
            obj.pk = created.pk
            obj._state.adding = False

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # Memberships change through the service, which records each change and keeps the last admin.
        organization = form.instance
        # What Django's change message lists: the memberships added, changed and removed.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline_form in formset.forms:
            membership = inline_form.instance
            if inline_form in formset.deleted_forms:
                if membership.pk:
                    services.membership_remove(membership=membership, actor=request.user)
                    formset.deleted_objects.append(membership)
                continue
            if not inline_form.has_changed():
                continue
            saved = services.membership_set(
                organization=organization,
                user=inline_form.cleaned_data["user"],
                role=inline_form.cleaned_data["role"],
                actor=request.user,
            )
            if membership.pk:
                formset.changed_objects.append((saved, inline_form.changed_data))
            else:
                formset.new_objects.append(saved)

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except services.ServiceError as exc:
            self.message_user(request, f"Not saved: {exc}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class ModelVersionInline(ReadOnlyInline):
    model = ModelVersion
    fields = ("version", "stage", "stage_changed_at", "artifact_uri", "created_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(AIModel)
class AIModelAdmin(InventoryColumns, OrganizationScopedAdmin):
    # The list is the inventory a governance committee reads (governance.admin.inventory).
    list_display = InventoryColumns.inventory_display
    list_filter = [*InventoryColumns.inventory_filters, "status", "decision_role"]
    search_fields = ["name", "slug", "intended_use"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ModelVersionInline]

    def save_model(self, request: HttpRequest, obj: AIModel, form: Any, change: bool) -> None:
        if change:
            before = {f: form.initial.get(f) for f in form.changed_data}
            super().save_model(request, obj, form, change)
            services.event_record(
                organization=obj.organization,
                actor=request.user,
                action="ai_model.changed",
                obj=obj,
                before=before,
                after={f: str(getattr(obj, f)) for f in form.changed_data},
            )
            return
        fields = {f: getattr(obj, f) for f in services.AI_MODEL_FIELDS}
        created = services.ai_model_create(organization=obj.organization, actor=request.user, owner=obj.owner, **fields)
        obj.pk = created.pk
        obj._state.adding = False


def _transition_action(stage: str) -> Any:
    """An admin action that first shows what would change and asks for confirmation, then moves the versions."""

    def action(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> HttpResponse | None:
        if request.POST.get("confirmed") != "yes":
            context = {
                **modeladmin.admin_site.each_context(request),
                "title": f"Move {queryset.count()} version(s) to {stage}?",
                "versions": queryset.select_related("ai_model"),
                "stage": stage,
                "action": request.POST.get("action", ""),
                "opts": modeladmin.model._meta,
                "gated": stage in ModelVersion.GATED_STAGES,
            }
            return TemplateResponse(request, "admin/governance/confirm_transition.html", context)
        for version in queryset:
            try:
                services.model_version_transition(model_version=version, to_stage=stage, actor=request.user)
            except (services.ServiceError, PermissionDenied) as exc:
                modeladmin.message_user(request, f"{version}: {exc}", messages.ERROR)
            else:
                modeladmin.message_user(request, f"{version} moved to {stage}", messages.SUCCESS)
        return None

    action.__name__ = f"move_to_{stage}"
    # Approvers alone see the actions into gated stages; the service checks the role per version too.
    permission = "approve" if stage in ModelVersion.GATED_STAGES else "change"
    return admin.action(description=f"Move selected versions to {stage}", permissions=[permission])(action)


@admin.register(ModelVersion)
class ModelVersionAdmin(OrganizationScopedAdmin):
    organization_path = "ai_model__organization"
    list_display = ["__str__", "stage", "stage_changed_at", "stage_changed_by", "created_at"]
    list_filter = ["stage", "ai_model__organization"]
    search_fields = ["version", "ai_model__name"]
    readonly_fields = ["stage", "stage_changed_at", "stage_changed_by", "created_by", "created_at"]
    actions = [
        "start_audit",
        *(_transition_action(stage) for stage in ModelVersion.Stage.values if stage != "draft"),
    ]

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return may(request, APPROVE_ROLES)

    @admin.action(description="Start an audit of the selected version", permissions=["change"])
    def start_audit(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to audit", messages.WARNING)
            return None
        url = reverse("admin:audits_auditrun_add")
        return HttpResponseRedirect(f"{url}?model_version={queryset.get().pk}")

    def get_readonly_fields(self, request: HttpRequest, obj: ModelVersion | None = None) -> Any:
        # The version string and artifact identify what was audited; they are fixed once registered.
        if obj is not None:
            return [*self.readonly_fields, "ai_model", "version", "artifact_uri", "artifact_sha256"]
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ModelVersion, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = services.model_version_create(
            ai_model=obj.ai_model,
            version=obj.version,
            actor=request.user,
            artifact_uri=obj.artifact_uri,
            artifact_sha256=obj.artifact_sha256,
            notes=obj.notes,
        )
        obj.pk = created.pk
        obj._state.adding = False
