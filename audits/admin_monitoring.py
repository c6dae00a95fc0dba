"""Monitoring in the admin: upload to a production stream, schedule audits, review and resolve alerts.

Imported by audits.admin, which Django's admin autodiscovery loads.
"""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms.models import construct_instance
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from audits.engines.errors import TableError
from audits.engines.roles_text import parse_protected, split_names
from audits.models import Alert, AuditSchedule, PredictionBatch
from audits.services.alerts import alert_resolve
from audits.services.schedules import (
    SCHEDULE_FIELDS,
    audit_schedule_create,
    audit_schedule_update,
    audit_schedule_validate,
)
from audits.services.stream import prediction_batch_upload
from governance.admin_site import (
    OrganizationScopedAdmin,
    RecordAdmin,
    form_page,
    limit_choices,
    may,
    organizations_where,
)
from governance.models import OWNER_ROLES, WRITE_ROLES, ModelVersion, Organization
from governance.selectors import ai_models_visible, datasets_visible, model_versions_visible
from governance.services import ServiceError


class PredictionBatchUploadForm(forms.Form):
    model_version = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), help_text="Whose stream this is")
    kind = forms.ChoiceField(choices=PredictionBatch.Kind.choices)
    file = forms.FileField(help_text="CSV (UTF-8, with a header) or Parquet")
    record_id = forms.CharField(help_text="Column with the record (encounter) id that joins outcomes to predictions")
    timestamp = forms.CharField(
        required=False, help_text="Column with the time of each prediction (ISO 8601); empty: the time of upload"
    )
    label = forms.CharField(
        required=False, help_text="Column with the observed outcome (0/1): required for outcomes, optional otherwise"
    )
    prediction = forms.CharField(required=False, help_text="Predictions: column with the model's decision (0/1)")
    score = forms.CharField(required=False, help_text="Predictions: column with the model's score or probability")
    protected = forms.CharField(
        required=False, help_text="Predictions: protected attributes as COLUMN=REFERENCE_GROUP, comma-separated"
    )
    features = forms.CharField(required=False, help_text="Predictions: feature columns, comma-separated")
    categorical = forms.CharField(required=False, help_text="Features whose numbers are codes, comma-separated")

    def __init__(self, *args: Any, organizations: QuerySet[Organization], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit_choices(self, "model_version", ModelVersion.objects.filter(ai_model__organization__in=organizations))

    def column_roles(self) -> dict[str, Any]:
        data = self.cleaned_data
        roles: dict[str, Any] = {
            "record_id": data["record_id"].strip(),
            "timestamp": data["timestamp"].strip() or None,
            "label": data["label"].strip() or None,
        }
        if data["kind"] == PredictionBatch.Kind.PREDICTIONS:
            roles.update(
                prediction=data["prediction"].strip() or None,
                score=data["score"].strip() or None,
                protected=parse_protected(data["protected"]),
                features=split_names(data["features"]),
                categorical=split_names(data["categorical"]),
            )
        return roles


@admin.register(PredictionBatch)
class PredictionBatchAdmin(RecordAdmin):
    list_display = ["id", "model_version", "kind", "row_count", "first_event_at", "last_event_at", "created_at"]
    list_filter = ["kind", "organization"]
    list_select_related = ["model_version__ai_model"]
    search_fields = ["sha256", "original_filename"]
    add_roles = WRITE_ROLES

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PredictionBatchUploadForm(
            request.POST or None, request.FILES or None, organizations=organizations_where(request, self.add_roles)
        )
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                batch = prediction_batch_upload(
                    model_version=form.cleaned_data["model_version"],
                    kind=form.cleaned_data["kind"],
                    file=upload,
                    filename=upload.name,
                    column_roles=form.column_roles(),
                    actor=request.user,
                )
            except (TableError, ServiceError, PermissionDenied) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"Appended {batch.kind} batch {batch.pk}: {batch.row_count} rows")
                return HttpResponseRedirect(reverse("admin:audits_predictionbatch_change", args=[batch.pk]))
        return form_page(self, request, form, title="Upload to a production stream", submit_label="Upload")


class AuditScheduleForm(forms.ModelForm):
    checks = forms.MultipleChoiceField(
        choices=AuditSchedule.Check.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The audits whose findings count; none ticked: all",
    )

    class Meta:
        model = AuditSchedule
        fields = ["ai_model", *SCHEDULE_FIELDS]

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        try:
            audit_schedule_validate(construct_instance(self, copy.copy(self.instance)))
        except ServiceError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, str(exc))
        return cleaned


@admin.register(AuditSchedule)
class AuditScheduleAdmin(OrganizationScopedAdmin):
    form = AuditScheduleForm
    add_roles = change_roles = OWNER_ROLES
    list_display = ["name", "ai_model", "cadence", "enabled", "next_run_at", "last_outcome", "overdue_since"]
    list_filter = ["enabled", "organization"]
    list_select_related = ["ai_model"]
    readonly_fields = ["next_run_at", "last_fired_at", "last_due_at", "last_run", "last_outcome", "overdue_since"]

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        visible = {
            "ai_model": ai_models_visible(request.user),
            "model_version": model_versions_visible(request.user),
            "reference_dataset": datasets_visible(request.user),
        }
        if db_field.name in visible:
            kwargs["queryset"] = visible[db_field.name]
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: AuditSchedule | None = None) -> Any:
        # The model of an existing schedule is fixed: make a new schedule for another model.
        return [*self.readonly_fields, "ai_model"] if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: AuditSchedule, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in SCHEDULE_FIELDS if name in form.cleaned_data}
        if change:
            saved = audit_schedule_update(schedule=AuditSchedule.objects.get(pk=obj.pk), actor=request.user, **fields)
        else:
            saved = audit_schedule_create(ai_model=form.cleaned_data["ai_model"], actor=request.user, **fields)
        obj.pk = saved.pk
        obj._state.adding = False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return self._with_service_errors(request, super().add_view, form_url, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        return self._with_service_errors(request, super().change_view, object_id, form_url, extra_context)

    def _with_service_errors(self, request: HttpRequest, view: Any, *args: Any) -> HttpResponse:
        # The service checks the cadence (cron fields, time zone); its refusal is shown, not a 500.
        try:
            return view(request, *args)
        except ServiceError as exc:
            self.message_user(request, f"Not saved: {exc}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


class AlertStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open"), ("resolved", "Resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Alert]) -> QuerySet[Alert]:
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(Alert)
class AlertAdmin(RecordAdmin):
    list_display = ["title", "ai_model", "kind", "opened_at", "occurrences", "last_seen_at", "resolved_at"]
    list_filter = [AlertStateFilter, "kind", "organization"]
    list_select_related = ["ai_model"]
    search_fields = ["title", "incident_key"]
    actions = ["resolve"]

    def has_resolve_permission(self, request: HttpRequest) -> bool:
        return may(request, WRITE_ROLES)

    @admin.action(description="Resolve the selected alerts (reviewed in the admin)", permissions=["resolve"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        resolved = sum(
            alert_resolve(
                alert=alert, resolution=f"reviewed and resolved in the admin by {request.user}", actor=request.user
            )
            for alert in queryset.filter(resolved_at__isnull=True)
            if may(request, WRITE_ROLES, alert.organization_id)
        )
        self.message_user(request, f"{resolved} alert(s) resolved")
