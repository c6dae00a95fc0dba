"""The registry in the admin. Writes go through the services, as they do from the API."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from audits.engines.errors import TableError
from audits.engines.roles_text import parse_protected, split_names
from governance import services
from governance.admin_inventory import InventoryColumns
from governance.admin_site import (
    NOBODY,
    OrganizationScopedAdmin,
    RecordAdmin,
    may,
    organizations_where,
)
from governance.models import (
    ADMIN_ROLES,
    ALL_ROLES,
    APPROVE_ROLES,
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
from governance.selectors import api_tokens_visible
from governance.webhooks import webhook_endpoint_create


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

    def __init__(self, *args: Any, organizations: QuerySet[Organization], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
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
    # Frozen after upload: the change page is a read-only view.
    change_roles = NOBODY
    list_display = ["name", "organization", "kind", "row_count", "original_format", "created_at", "short_sha256"]
    list_filter = ["organization", "kind"]
    search_fields = ["name", "sha256"]

    @admin.display(description="sha256")
    def short_sha256(self, obj: Dataset) -> str:
        return obj.sha256[:12]

    def get_readonly_fields(self, request: HttpRequest, obj: Dataset | None = None) -> Any:
        return [f.name for f in Dataset._meta.fields]

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        form = DatasetUploadForm(
            request.POST or None, request.FILES or None, organizations=organizations_where(request, self.add_roles)
        )
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
