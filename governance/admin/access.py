"""Who and what reaches the service from outside: API tokens, webhooks and their deliveries, and the event log."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from governance import services
from governance.admin_site import (
    NOBODY,
    OrganizationScopedAdmin,
    ReadOnlyInline,
    RecordAdmin,
    may,
    organizations_where,
)
from governance.models import (
    ADMIN_ROLES,
    ALL_ROLES,
    ApiToken,
    GovernanceEvent,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from governance.selectors import api_tokens_visible
from governance.webhooks import webhook_endpoint_create


class ApiTokenForm(forms.ModelForm):
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=730, initial=90, required=False, help_text="Leave empty for a token that does not expire"
    )

    class Meta:
        model = ApiToken
        fields = ["organization", "user", "name", "scope"]


@admin.register(ApiToken)
class ApiTokenAdmin(OrganizationScopedAdmin):
    form = ApiTokenForm
    list_display = ["name", "prefix", "organization", "user", "scope", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["organization", "scope"]
    actions = ["revoke"]
    # Any member may hold tokens of their own; an organization's admins manage everyone's.
    add_roles = ALL_ROLES
    change_roles = NOBODY

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        return api_tokens_visible(request.user)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"user": request.user.pk}

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "user" and not request.user.is_superuser:
            administered = organizations_where(request, ADMIN_ROLES)
            field.queryset = field.queryset.filter(
                Q(pk=request.user.pk) | Q(memberships__organization__in=administered)
            ).distinct()
        return field

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return may(request, ALL_ROLES)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        days = form.cleaned_data.get("expires_in_days")
        token, plaintext = services.api_token_create(
            organization=obj.organization,
            user=obj.user,
            name=obj.name,
            scope=obj.scope,
            actor=request.user,
            expires_in=timedelta(days=days) if days else None,
        )
        obj.pk = token.pk
        obj._state.adding = False
        self.message_user(
            request, f"Token created. Copy it now, it will not be shown again: {plaintext}", messages.WARNING
        )

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            services.api_token_revoke(token=token, actor=request.user)
        self.message_user(request, f"Revoked {queryset.count()} token(s)")


@admin.register(GovernanceEvent)
class GovernanceEventAdmin(RecordAdmin):
    list_display = ["created_at", "action", "object_type", "object_id", "actor_name", "organization", "sequence"]
    list_filter = ["action", "object_type", "organization"]
    search_fields = ["object_id", "request_id"]
    readonly_fields = [
        "created_at",
        "organization",
        "actor",
        "action",
        "object_type",
        "object_id",
        "pretty_before",
        "pretty_after",
        "request_id",
        "actor_name",
        "chain",
        "sequence",
        "prev_hash",
        "hash",
    ]
    exclude = ["before", "after"]

    @admin.display(description="Before")
    def pretty_before(self, obj: GovernanceEvent) -> str:
        return json.dumps(obj.before, indent=2, sort_keys=True) if obj.before is not None else "—"

    @admin.display(description="After")
    def pretty_after(self, obj: GovernanceEvent) -> str:
        return json.dumps(obj.after, indent=2, sort_keys=True) if obj.after is not None else "—"


class WebhookEndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(
        choices=WebhookEndpoint.Event.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["organization", "url", "events", "active"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(OrganizationScopedAdmin):
    # Where the organization's news goes is for its admins to decide.
    view_roles = add_roles = change_roles = delete_roles = ADMIN_ROLES
    form = WebhookEndpointForm
    list_display = ["url", "organization", "events", "active", "created_at"]
    list_filter = ["organization", "active"]

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        endpoint, secret = webhook_endpoint_create(
            organization=obj.organization, url=obj.url, events=list(form.cleaned_data["events"]), actor=request.user
        )
        obj.pk = endpoint.pk
        obj._state.adding = False
        self.message_user(request, f"Webhook added. Its signing secret, shown this once: {secret}", messages.WARNING)


class WebhookAttemptInline(ReadOnlyInline):
    model = WebhookAttempt
    readonly_fields = ["attempted_at", "response_code", "error", "duration_ms"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(RecordAdmin):
    organization_path = "endpoint__organization"
    view_roles = ADMIN_ROLES
    list_display = ["event", "endpoint", "state", "attempts", "last_response_code", "created_at", "delivered_at"]
    list_filter = ["state", "event"]
    readonly_fields = [
        "endpoint",
        "event",
        "payload",
        "state",
        "attempts",
        "last_response_code",
        "created_at",
        "delivered_at",
    ]
    inlines = [WebhookAttemptInline]
