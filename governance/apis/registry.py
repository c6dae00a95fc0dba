"""REST API of the registry: one view per operation, reads through selectors, writes through services."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DataError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from audits.engines.errors import TableError
from governance import selectors, services
from governance.idempotency import idempotent
from governance.models import AIModel, ApiToken, Dataset, DatasetPartition, ModelVersion, Organization


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Errors a user caused become 4xx responses that say what is wrong; see README 'Errors'."""
    if isinstance(exc, TableError):
        return Response({"detail": str(exc), "column": exc.column}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, services.ServiceError):
        return Response({"detail": str(exc), "field": exc.field}, status=exc.status)
    if isinstance(exc, DjangoPermissionDenied):
        return Response({"detail": str(exc) or "permission denied"}, status=status.HTTP_403_FORBIDDEN)
    if isinstance(exc, DataError):
        # A value the database cannot hold (a number out of range) that no validator caught: the caller's input.
        return Response(
            {"detail": "a value is out of the range its field can hold"}, status=status.HTTP_400_BAD_REQUEST
        )
    return drf_exception_handler(exc, context)


class TokenScopePermission(permissions.BasePermission):
    """A read-scoped token may only read."""

    message = "this token has read scope; use a token with write or ci scope to change anything"

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if isinstance(token, ApiToken) and token.scope == ApiToken.Scope.READ:
            return request.method in permissions.SAFE_METHODS
        return True


class GovernanceApi(APIView):
    permission_classes = [permissions.IsAuthenticated, TokenScopePermission]

    @property
    def token(self) -> ApiToken | None:
        return self.request.auth if isinstance(self.request.auth, ApiToken) else None

    def organization_or_404(self, slug: str) -> Organization:
        return get_object_or_404(selectors.organizations_visible(self.request.user, token=self.token), slug=slug)

    def paginate(self, queryset: QuerySet[Any], serializer_class: type[serializers.Serializer]) -> Response:
        from rest_framework.pagination import LimitOffsetPagination

        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)


class OrganizationOutput(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]


class OrganizationListCreateApi(GovernanceApi):
    class OrganizationCreateInput(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        slug = serializers.SlugField(max_length=80)

    @extend_schema(responses=OrganizationOutput(many=True))
    def get(self, request: Request) -> Response:
        return self.paginate(selectors.organizations_visible(request.user, token=self.token), OrganizationOutput)

    @extend_schema(request=OrganizationCreateInput, responses={201: OrganizationOutput})
    def post(self, request: Request) -> Response:
        if not request.user.is_staff or self.token is not None:
            raise PermissionDenied("creating an organization needs a staff account signed in (not a token)")
        data = self.OrganizationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        organization = services.organization_create(creator=request.user, **data.validated_data)
        return Response(OrganizationOutput(organization).data, status=status.HTTP_201_CREATED)


class AIModelOutput(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AIModel
        fields = [
            "id",
            "organization",
            "name",
            "slug",
            "owner",
            "intended_use",
            "intended_users",
            "target_population",
            "decision_role",
            "clinical_risk_level",
            "out_of_scope_uses",
            "status",
            "alert_emails",
            "created_at",
            "updated_at",
        ]


class AIModelListCreateApi(GovernanceApi):
    class AIModelCreateInput(serializers.Serializer):
        organization = serializers.SlugField()
        name = serializers.CharField(max_length=200)
        slug = serializers.SlugField(max_length=80)
        intended_use = serializers.CharField()
        intended_users = serializers.CharField(required=False, allow_blank=True, default="")
        target_population = serializers.CharField(required=False, allow_blank=True, default="")
        decision_role = serializers.ChoiceField(AIModel.DecisionRole.choices, default=AIModel.DecisionRole.INFORMS)
        clinical_risk_level = serializers.ChoiceField(AIModel.RiskLevel.choices, default=AIModel.RiskLevel.MODERATE)
        out_of_scope_uses = serializers.CharField(required=False, allow_blank=True, default="")
        status = serializers.ChoiceField(AIModel.Status.choices, default=AIModel.Status.IN_DEVELOPMENT)
        alert_emails = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="Extra alert addresses, comma-separated"
        )

    @extend_schema(responses=AIModelOutput(many=True))
    def get(self, request: Request) -> Response:
        models = selectors.ai_models_visible(request.user, token=self.token)
        if "organization" in request.query_params:
            models = models.filter(organization__slug=request.query_params["organization"])
        return self.paginate(models, AIModelOutput)

    @extend_schema(request=AIModelCreateInput, responses={201: AIModelOutput})
    def post(self, request: Request) -> Response:
        data = self.AIModelCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        organization = self.organization_or_404(fields.pop("organization"))
        ai_model = services.ai_model_create(organization=organization, actor=request.user, **fields)
        return Response(AIModelOutput(ai_model).data, status=status.HTTP_201_CREATED)


class AIModelDetailApi(GovernanceApi):
    @extend_schema(responses=AIModelOutput)
    def get(self, request: Request, model_id: int) -> Response:
        ai_model = get_object_or_404(selectors.ai_models_visible(request.user, token=self.token), pk=model_id)
        return Response(AIModelOutput(ai_model).data)


class ModelVersionOutput(serializers.ModelSerializer):
    ai_model = serializers.PrimaryKeyRelatedField(read_only=True)
    stage_changed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "ai_model",
            "version",
            "artifact_uri",
            "artifact_sha256",
            "stage",
            "stage_changed_at",
            "stage_changed_by",
            "notes",
            "created_at",
        ]


class ModelVersionListCreateApi(GovernanceApi):
    class ModelVersionCreateInput(serializers.Serializer):
        version = serializers.CharField(max_length=100)
        artifact_uri = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
        artifact_sha256 = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
        notes = serializers.CharField(required=False, allow_blank=True, default="")

    def ai_model(self, model_id: int) -> AIModel:
        return get_object_or_404(selectors.ai_models_visible(self.request.user, token=self.token), pk=model_id)

    @extend_schema(responses=ModelVersionOutput(many=True))
    def get(self, request: Request, model_id: int) -> Response:
        return self.paginate(self.ai_model(model_id).versions.all(), ModelVersionOutput)

    @extend_schema(request=ModelVersionCreateInput, responses={201: ModelVersionOutput, 200: ModelVersionOutput})
    @idempotent
    def post(self, request: Request, model_id: int) -> Response:
        ai_model = self.ai_model(model_id)
        data = self.ModelVersionCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        version, created = services.model_version_register(ai_model=ai_model, actor=request.user, **data.validated_data)
        return Response(
            ModelVersionOutput(version).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class ModelVersionDetailApi(GovernanceApi):
    @extend_schema(responses=ModelVersionOutput)
    def get(self, request: Request, version_id: int) -> Response:
        version = get_object_or_404(selectors.model_versions_visible(request.user, token=self.token), pk=version_id)
        return Response(ModelVersionOutput(version).data)


class ModelVersionTransitionApi(GovernanceApi):
    class ModelVersionTransitionInput(serializers.Serializer):
        stage = serializers.ChoiceField(ModelVersion.Stage.choices)

    @extend_schema(request=ModelVersionTransitionInput, responses=ModelVersionOutput)
    def post(self, request: Request, version_id: int) -> Response:
        version = get_object_or_404(selectors.model_versions_visible(request.user, token=self.token), pk=version_id)
        data = self.ModelVersionTransitionInput(data=request.data)
        data.is_valid(raise_exception=True)
        version = services.model_version_transition(
            model_version=version, to_stage=data.validated_data["stage"], actor=request.user
        )
        return Response(ModelVersionOutput(version).data)


class DatasetPartitionOutput(serializers.ModelSerializer):
    class Meta:
        model = DatasetPartition
        fields = ["index", "first_row", "row_count", "sha256", "size_bytes"]


class DatasetOutput(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    uploaded_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    partitions = DatasetPartitionOutput(many=True, read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "id",
            "organization",
            "ai_model",
            "name",
            "kind",
            "description",
            "period_start",
            "period_end",
            "original_filename",
            "original_format",
            "original_sha256",
            "sha256",
            "size_bytes",
            "row_count",
            "partition_count",
            "partitions",
            "columns",
            "column_roles",
            "uploaded_by",
            "created_at",
        ]


# In a multipart upload the roles travel as a JSON string, so the schema says string.
@extend_schema_field(OpenApiTypes.STR)
class JSONObjectField(serializers.Field):
    """A JSON object sent as a JSON value or, in a multipart form, as a JSON string."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError(f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise serializers.ValidationError("must be a JSON object")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class DatasetListCreateApi(GovernanceApi):
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    class DatasetUploadInput(serializers.Serializer):
        organization = serializers.SlugField()
        name = serializers.CharField(max_length=200)
        file = serializers.FileField()
        column_roles = JSONObjectField(
            help_text='{"label": "y", "prediction": "y_hat", "score": "p", '
            '"protected": [{"column": "race", "reference": "White"}], "features": [...], '
            '"alternative_outcome": null}'
        )
        kind = serializers.ChoiceField(Dataset.Kind.choices, default=Dataset.Kind.EVALUATION)
        ai_model = serializers.IntegerField(required=False, allow_null=True)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        period_start = serializers.DateField(required=False, allow_null=True)
        period_end = serializers.DateField(required=False, allow_null=True)

    @extend_schema(responses=DatasetOutput(many=True))
    def get(self, request: Request) -> Response:
        datasets = selectors.datasets_visible(request.user, token=self.token)
        params = request.query_params
        if "organization" in params:
            datasets = datasets.filter(organization__slug=params["organization"])
        if params.get("ai_model", "").isdigit():
            datasets = datasets.filter(ai_model_id=int(params["ai_model"]))
        if "kind" in params:
            datasets = datasets.filter(kind=params["kind"])

        return self.paginate(datasets, DatasetOutput)

    @extend_schema(request={"multipart/form-data": DatasetUploadInput}, responses={201: DatasetOutput})
    @idempotent
    def post(self, request: Request) -> Response:
        data = self.DatasetUploadInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        organization = self.organization_or_404(fields.pop("organization"))
        ai_model = None
        if fields.get("ai_model"):
            ai_model = get_object_or_404(
                selectors.ai_models_visible(request.user, token=self.token), pk=fields["ai_model"]
            )
        upload = fields.pop("file")
        dataset = services.dataset_upload(
            organization=organization,
            name=fields["name"],
            file=upload,
            filename=upload.name or "upload",
            column_roles=fields["column_roles"],
            actor=request.user,
            kind=fields["kind"],
            ai_model=ai_model,
            description=fields["description"],
            period_start=fields.get("period_start"),
            period_end=fields.get("period_end"),
        )
        return Response(DatasetOutput(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(GovernanceApi):
    @extend_schema(responses=DatasetOutput)
    def get(self, request: Request, dataset_id: int) -> Response:
        dataset = get_object_or_404(selectors.datasets_visible(request.user, token=self.token), pk=dataset_id)
        return Response(DatasetOutput(dataset).data)


class ApiTokenOutput(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "organization",
            "user",
            "name",
            "prefix",
            "scope",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "created_at",
        ]


class ApiTokenCreatedOutput(ApiTokenOutput):
    token = serializers.CharField(help_text="The token itself: shown this once, never stored")

    class Meta(ApiTokenOutput.Meta):
        fields = [*ApiTokenOutput.Meta.fields, "token"]


class ApiTokenListCreateApi(GovernanceApi):
    class ApiTokenCreateInput(serializers.Serializer):
        organization = serializers.SlugField()
        name = serializers.CharField(max_length=100)
        scope = serializers.ChoiceField(ApiToken.Scope.choices)
        expires_in_days = serializers.IntegerField(
            min_value=1,
            max_value=730,
            required=False,
            allow_null=True,
            default=90,
            help_text="null for a token that does not expire",
        )

    @extend_schema(responses=ApiTokenOutput(many=True))
    def get(self, request: Request) -> Response:
        return self.paginate(selectors.api_tokens_visible(request.user, token=self.token), ApiTokenOutput)

    @extend_schema(request=ApiTokenCreateInput, responses={201: ApiTokenCreatedOutput})
    def post(self, request: Request) -> Response:
        if self.token is not None:
            raise PermissionDenied("tokens are created by a person signed in (admin or session), not by a token")
        data = self.ApiTokenCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        organization = self.organization_or_404(data.validated_data["organization"])
        days = data.validated_data["expires_in_days"]
        token, plaintext = services.api_token_create(
            organization=organization,
            user=request.user,
            name=data.validated_data["name"],
            scope=data.validated_data["scope"],
            actor=request.user,
            expires_in=timedelta(days=days) if days else None,
        )
        body = ApiTokenOutput(token).data
        return Response({**body, "token": plaintext}, status=status.HTTP_201_CREATED)


class ApiTokenRevokeApi(GovernanceApi):
    @extend_schema(request=None, responses=ApiTokenOutput)
    def delete(self, request: Request, token_id: int) -> Response:
        token = get_object_or_404(selectors.api_tokens_visible(request.user, token=self.token), pk=token_id)
        return Response(ApiTokenOutput(services.api_token_revoke(token=token, actor=request.user)).data)
