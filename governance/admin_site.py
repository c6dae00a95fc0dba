"""The admin site of the service: members of an organization sign in, and their role there shapes what they see and do.

Django's own permission tables are not used for this. Each admin names the roles that may view, add,
change and delete its objects; a person's role is the one they hold in the object's organization
(Membership), so someone may approve in one hospital and only read in another. Superusers may do
whatever any role may; an empty set of roles means nobody, superusers included: records written
by the services are never edited or deleted through the admin.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from governance.models import (
    ALL_ROLES,
    WRITE_ROLES,
    AIModel,
    Dataset,
    Membership,
    ModelVersion,
    Organization,
)

NOBODY: frozenset[str] = frozenset()


def roles_of(request: HttpRequest) -> dict[int, str]:
    """The requester's role in each organization they belong to, read once per request."""
    cached = getattr(request, "_governance_roles", None)
    if cached is None:
        user: Any = request.user
        cached = {}
        if getattr(user, "is_authenticated", False):
            cached = dict(Membership.objects.filter(user=user).values_list("organization_id", "role"))
        request._governance_roles = cached  # type: ignore[attr-defined]
    return cached


def may(request: HttpRequest, roles: Iterable[str], organization_id: int | None = None) -> bool:
    """Whether the requester holds one of the roles: in that organization, or in any when none is named."""
    roles = frozenset(roles)
    if not roles:
        return False
    if getattr(request.user, "is_superuser", False):
        return True
    held = roles_of(request)
    if organization_id is None:
        return any(role in roles for role in held.values())
    return held.get(organization_id) in roles


def require(request: HttpRequest, roles: Iterable[str], organization_id: int, *, doing: str) -> None:
    """Refuse a page (403) to someone without the role in the object's organization."""
    if not may(request, roles, organization_id):
        raise PermissionDenied(f"{doing} needs one of the roles {', '.join(sorted(roles))} in this organization")


def organizations_where(request: HttpRequest, roles: Iterable[str]) -> QuerySet[Organization]:
    """Organizations in which the requester holds one of the roles."""
    if getattr(request.user, "is_superuser", False):
        return Organization.objects.all()
    roles = frozenset(roles)
    return Organization.objects.filter(pk__in=[org for org, role in roles_of(request).items() if role in roles])


class MemberAuthenticationForm(AdminAuthenticationForm):
    """Members of an organization sign in to the admin without Django's staff flag; password guessing is slowed."""

    def clean(self) -> dict[str, Any]:
        from governance.throttle import failure_record, seconds_blocked

        wait = seconds_blocked(self.request, "sign-in") if self.request is not None else 0
        if wait:
            raise forms.ValidationError(
                f"Too many failed sign-ins from this address. Try again in {wait} seconds.", code="throttled"
            )
        try:
            return super().clean()
        except forms.ValidationError:
            if self.request is not None:
                failure_record(self.request, "sign-in")
            raise

    def confirm_login_allowed(self, user: Any) -> None:
        if user.is_active and (user.is_staff or Membership.objects.filter(user=user).exists()):
            return
        raise forms.ValidationError(
            "This account belongs to no organization. Ask an administrator of your organization to add you.",
            code="invalid_login",
        )


class GovernanceAdminSite(admin.AdminSite):
    site_header = "Clinical AI governance"
    site_title = "Clinical AI governance"
    index_title = "Registry, audits and reports"
    login_form = MemberAuthenticationForm

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        if not getattr(user, "is_active", False):
            return False
        return bool(user.is_staff or roles_of(request))


class OrganizationScopedAdmin(admin.ModelAdmin):
    """Objects of the organizations the requester belongs to, with what their role there allows."""

    # How to reach the organization from an object ("" when the object is the organization).
    organization_path = "organization"
    view_roles: frozenset[str] = ALL_ROLES
    add_roles: frozenset[str] = WRITE_ROLES
    change_roles: frozenset[str] = WRITE_ROLES
    delete_roles: frozenset[str] = NOBODY

    def organization_id_of(self, obj: Model) -> int | None:
        if not self.organization_path:
            return obj.pk
        target: Any = obj
        try:
            for step in self.organization_path.split("__"):
                target = getattr(target, step)
        except ObjectDoesNotExist:
            # An object a service has just saved for the form: its organization is in the database.
            path = f"{self.organization_path}__pk"
            return type(obj)._default_manager.filter(pk=obj.pk).values_list(path, flat=True).first()
        return target.pk if target is not None else None

    def _may(self, request: HttpRequest, roles: frozenset[str], obj: Model | None) -> bool:
        return may(request, roles, None if obj is None else self.organization_id_of(obj))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        path = f"{self.organization_path}__in" if self.organization_path else "pk__in"
        return queryset.filter(**{path: list(roles_of(request))})

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._may(request, self.view_roles | self.change_roles, None)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, self.view_roles, obj) or self.has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may(request, self.add_roles, None)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, self.change_roles, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, self.delete_roles, obj)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        # Choices come from the organizations where the requester may write: no other hospital's names.
        writable = organizations_where(request, self.add_roles | self.change_roles)
        related = db_field.related_model
        if related is Organization:
            kwargs["queryset"] = writable
        elif related is AIModel:
            kwargs["queryset"] = AIModel.objects.filter(organization__in=writable)
        elif related is ModelVersion:
            kwargs["queryset"] = ModelVersion.objects.filter(ai_model__organization__in=writable)
        elif related is Dataset:
            kwargs["queryset"] = Dataset.objects.filter(organization__in=writable)
        elif related is get_user_model():
            kwargs["queryset"] = (
                get_user_model().objects.filter(memberships__organization__in=writable).distinct().order_by("username")
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class RecordAdmin(OrganizationScopedAdmin):
    """A record that is written by the services only: its admin page is read-only."""

    add_roles = NOBODY
    change_roles = NOBODY


class ReadOnlyInline(admin.TabularInline):
    """Rows shown under a parent the requester may see (the parent's admin scoped it), never edited here."""

    extra = 0
    can_delete = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def form_page(
    admin_view: admin.ModelAdmin, request: HttpRequest, form: forms.Form, *, title: str, submit_label: str
) -> TemplateResponse:
    """An admin page with one form whose submission calls a service (upload, start an audit)."""
    context = {
        **admin_view.admin_site.each_context(request),
        "title": title,
        "form": form,
        "opts": admin_view.model._meta,
        "submit_label": submit_label,
    }
    return TemplateResponse(request, "admin/governance/form_page.html", context)


def limit_choices(form: forms.Form, field: str, queryset: QuerySet[Any]) -> None:
    """Offer only what the user may see in a model choice field."""
    choice_field = form.fields[field]
    assert isinstance(choice_field, forms.ModelChoiceField)
    choice_field.queryset = queryset
