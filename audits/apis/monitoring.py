"""REST API of monitoring: the production stream, audit schedules, alerts, and metric time series."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from audits import selectors as audit_selectors
from audits.models import Alert, AuditSchedule, PredictionBatch
from audits.services.alerts import alert_resolve
from audits.services.schedules import SCHEDULE_FIELDS, audit_schedule_create, audit_schedule_update
from audits.services.stream import prediction_batch_upload, production_window_snapshot
from governance import selectors
from governance.apis import DatasetOutput, GovernanceApi, JSONObjectField
from governance.idempotency import idempotent
from governance.models import ModelVersion, Role
from governance.services import require_role


class PredictionBatchOutput(serializers.ModelSerializer):
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = PredictionBatch
        fields = [
            "id",
            "model_version",
            "kind",
            "original_filename",
            "original_format",
            "original_sha256",
            "sha256",
            "size_bytes",
            "row_count",
            "columns",
            "column_roles",
            "identifier_scan",
            "first_event_at",
            "last_event_at",
            "uploaded_by",
            "created_at",
        ]


class PredictionBatchListCreateApi(GovernanceApi):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    class PredictionBatchUploadInput(serializers.Serializer):
        kind = serializers.ChoiceField(PredictionBatch.Kind.choices)
        file = serializers.FileField()
        column_roles = JSONObjectField(
            help_text='predictions: {"record_id": "encounter_id", "timestamp": "scored_at", "score": "p", '
            '"prediction": "alert", "protected": [...], "features": [...], "label": optional}; '
            'outcomes: {"record_id": "encounter_id", "label": "readmitted"}'
        )

    def version(self, version_id: int) -> ModelVersion:
        return get_object_or_404(selectors.model_versions_visible(self.request.user, token=self.token), pk=version_id)

    @extend_schema(responses=PredictionBatchOutput(many=True))
    def get(self, request: Request, version_id: int) -> Response:
        batches = audit_selectors.prediction_batches_visible(request.user, token=self.token).filter(
            model_version=self.version(version_id)
        )
        if "kind" in request.query_params:
            batches = batches.filter(kind=request.query_params["kind"])
        return self.paginate(batches, PredictionBatchOutput)

    @extend_schema(request={"multipart/form-data": PredictionBatchUploadInput}, responses={201: PredictionBatchOutput})
    @idempotent
    def post(self, request: Request, version_id: int) -> Response:
        version = self.version(version_id)
        data = self.PredictionBatchUploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        batch = prediction_batch_upload(
            model_version=version,
            kind=data.validated_data["kind"],
            file=upload,
            filename=upload.name or "batch",
            column_roles=data.validated_data["column_roles"],
            actor=request.user,
        )
        return Response(PredictionBatchOutput(batch).data, status=status.HTTP_201_CREATED)


class ProductionWindowCreateApi(GovernanceApi):
    class ProductionWindowInput(serializers.Serializer):
        start = serializers.DateTimeField()
        end = serializers.DateTimeField()

    @extend_schema(
        request=ProductionWindowInput,
        responses={201: DatasetOutput},
        description="Freeze the window [start, end) of the version's production stream, outcomes joined, "
        "as a production dataset that an audit can be started on.",
    )
    @idempotent
    def post(self, request: Request, version_id: int) -> Response:
        version = get_object_or_404(selectors.model_versions_visible(request.user, token=self.token), pk=version_id)
        data = self.ProductionWindowInput(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = production_window_snapshot(
            model_version=version,
            start=data.validated_data["start"],
            end=data.validated_data["end"],
            actor=request.user,
        )
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class AuditScheduleOutput(serializers.ModelSerializer):
    class Meta:
        model = AuditSchedule
        fields = [
            "id",
            "ai_model",
            *SCHEDULE_FIELDS,
            "next_run_at",
            "last_fired_at",
            "last_due_at",
            "last_run",
            "last_outcome",
            "overdue_since",
            "created_at",
            "updated_at",
        ]


class AuditScheduleInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    model_version = serializers.IntegerField(required=False, allow_null=True)
    cron = serializers.CharField(max_length=100, required=False, allow_blank=True)
    interval_minutes = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=527_040)
    timezone = serializers.CharField(max_length=64, required=False)
    checks = serializers.ListField(
        child=serializers.ChoiceField(AuditSchedule.Check.choices), required=False, allow_empty=True
    )
    window_days = serializers.IntegerField(required=False, min_value=1, max_value=3660)
    reference_dataset = serializers.IntegerField(required=False, allow_null=True)
    grace_minutes = serializers.IntegerField(required=False, min_value=1, max_value=527_040)
    enabled = serializers.BooleanField(required=False)
    start_now = serializers.BooleanField(
        required=False, default=False, help_text="On creation: first due now rather than at the next due time"
    )


def _schedule_fields(api: GovernanceApi, validated: dict[str, Any]) -> dict[str, Any]:
    """The input with the version and reference resolved among what the caller may see."""
    fields = dict(validated)
    if fields.get("model_version") is not None:
        versions = selectors.model_versions_visible(api.request.user, token=api.token)
        fields["model_version"] = get_object_or_404(versions, pk=fields["model_version"])
    if fields.get("reference_dataset") is not None:
        datasets = selectors.datasets_visible(api.request.user, token=api.token)
        fields["reference_dataset"] = get_object_or_404(datasets, pk=fields["reference_dataset"])
    return fields


class AuditScheduleListCreateApi(GovernanceApi):
    @extend_schema(responses=AuditScheduleOutput(many=True))
    def get(self, request: Request, model_id: int) -> Response:
        ai_model = get_object_or_404(selectors.ai_models_visible(request.user, token=self.token), pk=model_id)
        schedules = audit_selectors.audit_schedules_visible(request.user, token=self.token).filter(ai_model=ai_model)
        return self.paginate(schedules, AuditScheduleOutput)

    @extend_schema(request=AuditScheduleInput, responses={201: AuditScheduleOutput})
    def post(self, request: Request, model_id: int) -> Response:
        ai_model = get_object_or_404(selectors.ai_models_visible(request.user, token=self.token), pk=model_id)
        data = AuditScheduleInput(data=request.data)
        data.is_valid(raise_exception=True)
        schedule = audit_schedule_create(
            ai_model=ai_model, actor=request.user, **_schedule_fields(self, data.validated_data)
        )
        return Response(AuditScheduleOutput(schedule).data, status=status.HTTP_201_CREATED)


class AuditScheduleDetailApi(GovernanceApi):
    def schedule(self, schedule_id: int) -> AuditSchedule:
        visible = audit_selectors.audit_schedules_visible(self.request.user, token=self.token)
        return get_object_or_404(visible, pk=schedule_id)

    @extend_schema(responses=AuditScheduleOutput)
    def get(self, request: Request, schedule_id: int) -> Response:
        return Response(AuditScheduleOutput(self.schedule(schedule_id)).data)

    @extend_schema(request=AuditScheduleInput(partial=True), responses=AuditScheduleOutput)
    def patch(self, request: Request, schedule_id: int) -> Response:
        schedule = self.schedule(schedule_id)
        data = AuditScheduleInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = _schedule_fields(self, data.validated_data)
        fields.pop("start_now", None)
        schedule = audit_schedule_update(schedule=schedule, actor=request.user, **fields)
        return Response(AuditScheduleOutput(schedule).data)


class AlertOutput(serializers.ModelSerializer):
    ai_model = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    resolved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "ai_model",
            "kind",
            "incident_key",
            "title",
            "details",
            "opened_at",
            "last_seen_at",
            "occurrences",
            "resolved_at",
            "resolution",
            "resolved_by",
            "notified",
        ]


class AlertListApi(GovernanceApi):
    @extend_schema(
        parameters=[
            OpenApiParameter("model", int, description="Only this model's alerts"),
            OpenApiParameter("open", bool, description="true: open alerts only; false: resolved only"),
        ],
        responses=AlertOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        alerts = audit_selectors.alerts_visible(request.user, token=self.token)
        params = request.query_params
        if params.get("model", "").isdigit():
            alerts = alerts.filter(ai_model_id=int(params["model"]))
        if params.get("open") in ("true", "1"):
            alerts = alerts.filter(resolved_at__isnull=True)
        elif params.get("open") in ("false", "0"):
            alerts = alerts.filter(resolved_at__isnull=False)
        return self.paginate(alerts, AlertOutput)


class AlertResolveApi(GovernanceApi):
    class AlertResolveInput(serializers.Serializer):
        resolution = serializers.CharField(max_length=500, help_text="What was done, or why it needs nothing")

    @extend_schema(request=AlertResolveInput, responses=AlertOutput)
    def post(self, request: Request, alert_id: int) -> Response:
        alert = get_object_or_404(audit_selectors.alerts_visible(request.user, token=self.token), pk=alert_id)
        data = self.AlertResolveInput(data=request.data)
        data.is_valid(raise_exception=True)
        require_role(
            request.user,
            alert.ai_model.organization,
            {Role.AUDITOR, Role.MODEL_OWNER, Role.APPROVER, Role.ADMIN},
            doing="Resolving an alert",
        )
        if not alert_resolve(alert=alert, resolution=data.validated_data["resolution"], actor=request.user):
            return Response({"detail": f"alert {alert.pk} is already resolved"}, status=status.HTTP_409_CONFLICT)
        alert.refresh_from_db()
        return Response(AlertOutput(alert).data)


class MetricSeriesApi(GovernanceApi):
    @extend_schema(
        parameters=[
            OpenApiParameter("metric", str, required=True, description="e.g. true_positive_rate, disparate_impact"),
            OpenApiParameter("attribute", str, description="Protected attribute (or intersection, race&sex)"),
            OpenApiParameter("group", str),
            OpenApiParameter("model_version", int),
            OpenApiParameter("schedule", int, description="Only the runs of this schedule"),
            OpenApiParameter("since", str, description="ISO 8601 date-time"),
        ],
        responses={
            200: OpenApiResponse(
                description="{metric, bound, series: [{attribute, group, reference_group, column, "
                "points: [{run, at, value, ci_low, ci_high, n, ...}], changes: [{from_run, to_run, scale, change, "
                "ci_low, ci_high, significant}]}]}"
            )
        },
    )
    def get(self, request: Request, model_id: int) -> Response:
        ai_model = get_object_or_404(selectors.ai_models_visible(request.user, token=self.token), pk=model_id)
        params = request.query_params
        metric = params.get("metric", "")
        if not metric:
            known = ", ".join(audit_selectors.metrics_of_model(ai_model)) or "none yet"
            raise ValidationError({"metric": f"name a metric; this model's runs have: {known}"})
        since = None
        if params.get("since"):
            since = parse_datetime(params["since"])
            if since is None:
                raise ValidationError({"since": "use an ISO 8601 date-time, e.g. 2026-11-01T00:00:00Z"})
        integers = {}
        for name in ("model_version", "schedule"):
            if params.get(name):
                if not params[name].isdigit():
                    raise ValidationError({name: "must be an id (an integer)"})
                integers[name] = int(params[name])
        return Response(
            audit_selectors.metric_series(
                ai_model=ai_model,
                metric=metric,
                attribute=params.get("attribute"),
                group=params.get("group"),
                model_version_id=integers.get("model_version"),
                schedule_id=integers.get("schedule"),
                since=since,
            )
        )
