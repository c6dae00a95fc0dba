"""REST API of audit runs."""

from __future__ import annotations

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from audits import selectors as audit_selectors
from audits.models import AuditPolicy, AuditRun, Finding, FindingReview, MetricResult
from audits.services import audit_policy_update, audit_run_create
from audits.services.triage import ACTIONS as TRIAGE_ACTIONS
from audits.services.triage import finding_triage
from governance import selectors
from governance.apis import GovernanceApi
from governance.idempotency import idempotent

# The fields of audits.models.Measurement, shared by metric results and findings.
MEASUREMENT_FIELDS = ["metric", "attribute", "group", "reference_group", "column", "value", "ci_low", "ci_high"]


class FindingOutput(serializers.ModelSerializer):
    class Meta:
        model = Finding
        fields = [
            "id",
            "severity",
            "category",
            *MEASUREMENT_FIELDS,
            "threshold_low",
            "threshold_high",
            "message",
            "review_status",
        ]


class AuditRunOutput(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    drift_report_url = serializers.SerializerMethodField()
    findings = FindingOutput(many=True, read_only=True)

    class Meta:
        model = AuditRun
        fields = [
            "id",
            "organization",
            "model_version",
            "dataset",
            "reference_dataset",
            "status",
            "progress",
            "created_at",
            "started_at",
            "finished_at",
            "attempt",
            "error",
            "verdict",
            "findings",
            "result",
            "drift_report_url",
        ]

    def get_drift_report_url(self, run: AuditRun) -> str | None:
        return f"/api/v1/audits/{run.pk}/drift-report/" if run.drift_report_file else None


class AuditRunSummaryOutput(AuditRunOutput):
    class Meta(AuditRunOutput.Meta):
        fields = [f for f in AuditRunOutput.Meta.fields if f not in ("result", "findings")]


class MetricResultOutput(serializers.ModelSerializer):
    class Meta:
        model = MetricResult
        fields = ["category", *MEASUREMENT_FIELDS, "p_value", "status", "n", "details"]


class AuditRunListCreateApi(GovernanceApi):
    class AuditRunCreateInput(serializers.Serializer):
        model_version = serializers.IntegerField()
        dataset = serializers.IntegerField()
        reference_dataset = serializers.IntegerField(required=False, allow_null=True)

    @extend_schema(responses=AuditRunSummaryOutput(many=True))
    def get(self, request: Request) -> Response:
        runs = audit_selectors.audit_runs_visible(request.user, token=self.token)
        if "model_version" in request.query_params:
            runs = runs.filter(model_version_id=request.query_params["model_version"])
        return self.paginate(runs, AuditRunSummaryOutput)

    @extend_schema(request=AuditRunCreateInput, responses={201: AuditRunSummaryOutput})
    @idempotent
    def post(self, request: Request) -> Response:
        data = self.AuditRunCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        versions = selectors.model_versions_visible(request.user, token=self.token)
        datasets = selectors.datasets_visible(request.user, token=self.token)
        reference_id = data.validated_data.get("reference_dataset")
        run = audit_run_create(
            model_version=get_object_or_404(versions, pk=data.validated_data["model_version"]),
            dataset=get_object_or_404(datasets, pk=data.validated_data["dataset"]),
            reference_dataset=get_object_or_404(datasets, pk=reference_id) if reference_id else None,
            actor=request.user,
        )
        return Response(AuditRunSummaryOutput(run).data, status=status.HTTP_201_CREATED)


class AuditRunDetailApi(GovernanceApi):
    @extend_schema(responses=AuditRunOutput)
    def get(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(audit_selectors.audit_runs_visible(request.user, token=self.token), pk=run_id)
        return Response(AuditRunOutput(run).data)


class AuditRunMetricsApi(GovernanceApi):
    @extend_schema(responses=MetricResultOutput(many=True))
    def get(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(audit_selectors.audit_runs_visible(request.user, token=self.token), pk=run_id)
        metrics = run.metrics.all()
        if "category" in request.query_params:
            metrics = metrics.filter(category=request.query_params["category"])
        return self.paginate(metrics, MetricResultOutput)


class AuditRunDriftReportApi(GovernanceApi):
    @extend_schema(responses={(200, "text/html"): OpenApiResponse(description="Evidently's interactive drift report")})
    def get(self, request: Request, run_id: int) -> FileResponse:
        run = get_object_or_404(audit_selectors.audit_runs_visible(request.user, token=self.token), pk=run_id)
        if not run.drift_report_file:
            raise Http404("this run has no drift report (no reference dataset, or not finished)")
        return FileResponse(run.drift_report_file.open("rb"), content_type="text/html")


class AuditPolicyOutput(serializers.Serializer):
    ai_model = serializers.IntegerField()
    bounds = serializers.DictField(help_text="Accepted range and severity of every metric, defaults included")
    min_group_size = serializers.IntegerField()
    ci_rule = serializers.CharField()
    correction = serializers.CharField()
    operating_point = serializers.FloatField()
    fail_on = serializers.ListField(child=serializers.CharField())
    intersection_order = serializers.IntegerField()
    non_inferiority_margin = serializers.FloatField()
    is_default = serializers.BooleanField()


def _effective_policy(ai_model_id: int) -> dict[str, object]:
    from audits.engines.policy import Policy

    stored = AuditPolicy.objects.filter(ai_model_id=ai_model_id).first()
    policy = Policy.from_dict(stored.as_dict()) if stored else Policy()
    return {"ai_model": ai_model_id, **policy.to_dict(), "is_default": stored is None}


class AuditPolicyApi(GovernanceApi):
    class AuditPolicyInput(serializers.Serializer):
        bounds = serializers.DictField(required=False, help_text="Overrides: {metric: {low, high, severity}}")
        min_group_size = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000_000)
        ci_rule = serializers.ChoiceField(AuditPolicy.CiRule.choices, required=False)
        correction = serializers.ChoiceField(AuditPolicy.Correction.choices, required=False)
        operating_point = serializers.FloatField(required=False, min_value=0, max_value=1)
        fail_on = serializers.ListField(child=serializers.ChoiceField(["critical", "warning", "info"]), required=False)
        intersection_order = serializers.IntegerField(required=False, min_value=1, max_value=4)
        non_inferiority_margin = serializers.FloatField(required=False, min_value=0, max_value=1)

    @extend_schema(responses=AuditPolicyOutput)
    def get(self, request: Request, model_id: int) -> Response:
        ai_model = get_object_or_404(selectors.ai_models_visible(request.user, token=self.token), pk=model_id)
        return Response(_effective_policy(ai_model.pk))

    @extend_schema(request=AuditPolicyInput, responses=AuditPolicyOutput)
    def patch(self, request: Request, model_id: int) -> Response:
        ai_model = get_object_or_404(selectors.ai_models_visible(request.user, token=self.token), pk=model_id)
        data = self.AuditPolicyInput(data=request.data)
        data.is_valid(raise_exception=True)
        audit_policy_update(ai_model=ai_model, actor=request.user, **data.validated_data)
        return Response(_effective_policy(ai_model.pk))


class AuditRunVerdictApi(GovernanceApi):
    @extend_schema(
        responses={
            200: OpenApiResponse(
                description="pending | error | pass | fail, with findings and "
                "the group-by-group comparison with the deployed version"
            )
        }
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(audit_selectors.audit_runs_visible(request.user, token=self.token), pk=run_id)
        return Response(audit_selectors.audit_run_verdict(run))


class FindingReviewOutput(serializers.ModelSerializer):
    reviewed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = FindingReview
        fields = ["id", "finding", "action", "from_status", "to_status", "justification", "reviewed_by", "reviewed_at"]


class FindingTriageApi(GovernanceApi):
    class FindingTriageInput(serializers.Serializer):
        action = serializers.ChoiceField(list(TRIAGE_ACTIONS))
        justification = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            help_text="What was done (mitigate), why the risk is acceptable (accept_risk), what changed (reopen)",
        )

    @extend_schema(request=FindingTriageInput, responses={201: FindingReviewOutput})
    def post(self, request: Request, finding_id: int) -> Response:
        finding = get_object_or_404(audit_selectors.findings_visible(request.user, token=self.token), pk=finding_id)
        data = self.FindingTriageInput(data=request.data)
        data.is_valid(raise_exception=True)
        review = finding_triage(finding=finding, actor=request.user, **data.validated_data)
        return Response(FindingReviewOutput(review).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=FindingReviewOutput(many=True))
    def get(self, request: Request, finding_id: int) -> Response:
        finding = get_object_or_404(audit_selectors.findings_visible(request.user, token=self.token), pk=finding_id)
        return self.paginate(finding.reviews.select_related("reviewed_by"), FindingReviewOutput)
