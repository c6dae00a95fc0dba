"""The registry in the admin. Writes go through the services, as they do from the API."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from audits.engines.errors import TableError
from audits.engines.roles_text import parse_protected, split_names
from governance import services
from governance.admin_inventory import InventoryColumns
from governance.models import (
    AIModel,
    ApiToken,
    Dataset,
    GovernanceEvent,
    Membership,
    ModelVersion,
    Organization,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from governance.selectors import organizations_visible
from governance.webhooks import webhook_endpoint_create


class OrganizationScopedAdmin(admin.ModelAdmin):
    """Staff see only the objects of organizations they belong to; superusers see all."""

    organization_path = "organization"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{f"{self.organization_path}__in": organizations_visible(request.user)})

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.related_model is Organization and not request.user.is_superuser:
            kwargs["queryset"] = organizations_visible(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class RecordAdmin(OrganizationScopedAdmin):
    """A record that is written by the services only: its admin page is read-only."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.method in ("GET", "HEAD")

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


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Organization]:
        return organizations_visible(request.user)

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


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    extra = 0
    fields = ("version", "stage", "stage_changed_at", "artifact_uri", "created_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AIModel)
class AIModelAdmin(InventoryColumns, OrganizationScopedAdmin):
    # The list is the inventory a governance committee reads (governance.admin_inventory).
    list_display = InventoryColumns.inventory_display
    list_filter = [*InventoryColumns.inventory_filters, "status", "decision_role"]
    search_fields = ["name", "slug", "intended_use"]
    prepopulated_fields = {"slug": ["name"]}
    autocomplete_fields = ["owner"]
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
    return admin.action(description=f"Move selected versions to {stage}")(action)


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

    @admin.action(description="Start an audit of the selected version")
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


def limit_choices(form: forms.Form, field: str, queryset: QuerySet[Any]) -> None:
    """Offer only what the user may see in a model choice field."""
    choice_field = form.fields[field]
    assert isinstance(choice_field, forms.ModelChoiceField)
    choice_field.queryset = queryset


class DatasetUploadForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.none())
    ai_model = forms.ModelChoiceField(queryset=AIModel.objects.none(), required=False, label="Model")
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Dataset.Kind.choices)
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="Provenance: where the data comes from, how it was drawn.",
    )
    period_start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    period_end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    file = forms.FileField(help_text="CSV (UTF-8, with a header) or Parquet")
    label = forms.CharField(help_text="Column with the observed outcome (0/1)")
    prediction = forms.CharField(help_text="Column with the model's decision (0/1)")
    score = forms.CharField(required=False, help_text="Column with the model's score or probability")
    protected = forms.CharField(
        help_text="Protected attributes as COLUMN=REFERENCE_GROUP, comma-separated; leave out =GROUP to use the "
        "largest group, e.g. race=Caucasian,gender"
    )
    features = forms.CharField(required=False, help_text="Feature columns, comma-separated")
    categorical = forms.CharField(
        required=False, help_text="Features whose numbers are codes rather than quantities, comma-separated"
    )
    alternative_outcome = forms.CharField(required=False, help_text="Column with a direct measure of need")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        organizations = organizations_visible(user)
        limit_choices(self, "organization", organizations)
        limit_choices(self, "ai_model", AIModel.objects.filter(organization__in=organizations))

    def column_roles(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "label": data["label"].strip(),
            "prediction": data["prediction"].strip(),
            "score": data["score"].strip() or None,
            "protected": parse_protected(data["protected"]),
            "features": split_names(data["features"]),
            "categorical": split_names(data["categorical"]),
            "alternative_outcome": data["alternative_outcome"].strip() or None,
        }


@admin.register(Dataset)
class DatasetAdmin(OrganizationScopedAdmin):
    list_display = ["name", "organization", "kind", "row_count", "original_format", "created_at", "short_sha256"]
    list_filter = ["organization", "kind"]
    search_fields = ["name", "sha256"]

    @admin.display(description="sha256")
    def short_sha256(self, obj: Dataset) -> str:
        return obj.sha256[:12]

    def get_readonly_fields(self, request: HttpRequest, obj: Dataset | None = None) -> Any:
        return [f.name for f in Dataset._meta.fields]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Frozen after upload: the change page is a read-only view.
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        form = DatasetUploadForm(request.POST or None, request.FILES or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                dataset = services.dataset_upload(
                    organization=form.cleaned_data["organization"],
                    ai_model=form.cleaned_data["ai_model"],
                    name=form.cleaned_data["name"],
                    kind=form.cleaned_data["kind"],
                    description=form.cleaned_data["description"],
                    period_start=form.cleaned_data["period_start"],
                    period_end=form.cleaned_data["period_end"],
                    file=upload,
                    filename=upload.name,
                    column_roles=form.column_roles(),
                    actor=request.user,
                )
            except (TableError, services.ServiceError, PermissionDenied) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request, f"Uploaded {dataset.name}: {dataset.row_count} rows, sha256 {dataset.sha256}"
                )
                return HttpResponseRedirect(reverse("admin:governance_dataset_change", args=[dataset.pk]))
        return form_page(self, request, form, title="Upload a dataset", submit_label="Upload")


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
    autocomplete_fields = ["user"]
    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

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

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            services.api_token_revoke(token=token, actor=request.user)
        self.message_user(request, f"Revoked {queryset.count()} token(s)")


@admin.register(GovernanceEvent)
class GovernanceEventAdmin(RecordAdmin):
    list_display = ["created_at", "action", "object_type", "object_id", "actor", "organization", "request_id"]
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
    ]
    exclude = ["before", "after"]

    @admin.display(description="Before")
    def pretty_before(self, obj: GovernanceEvent) -> str:
        return json.dumps(obj.before, indent=2, sort_keys=True) if obj.before is not None else "—"

    @admin.display(description="After")
    def pretty_after(self, obj: GovernanceEvent) -> str:
        return json.dumps(obj.after, indent=2, sort_keys=True) if obj.after is not None else "—"


admin.site.site_header = "Clinical AI governance"
admin.site.site_title = "Clinical AI governance"
admin.site.index_title = "Registry, audits and reports"


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


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["attempted_at", "response_code", "error", "duration_ms"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(RecordAdmin):
    organization_path = "endpoint__organization"
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
