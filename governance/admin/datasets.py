"""Datasets in the admin: the upload page (checked and frozen by the service) and a read-only view."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from audits.engines.errors import TableError
from audits.engines.roles_text import parse_protected, split_names
from governance import services
from governance.admin_site import (
    NOBODY,
    OrganizationScopedAdmin,
    ReadOnlyInline,
    form_page,
    limit_choices,
    organizations_where,
)
from governance.models import (
    AIModel,
    Dataset,
    DatasetPartition,
    Organization,
)


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


class DatasetPartitionInline(ReadOnlyInline):
    """The Parquet files the dataset is stored as, each with its rows and sha256."""

    model = DatasetPartition
    fields = readonly_fields = ("index", "first_row", "row_count", "size_bytes", "sha256")


@admin.register(Dataset)
class DatasetAdmin(OrganizationScopedAdmin):
    inlines = [DatasetPartitionInline]
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
        if not self.has_add_permission(request):
            raise PermissionDenied
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
