"""REST API and pages of reports."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from audits.selectors import audit_runs_visible
from governance.apis import GovernanceApi
from governance.models import Role
from governance.selectors import ai_models_visible, model_versions_visible
from governance.services import ServiceError, event_record, require_role
from reports.exporters.chai_xml import model_card_xml
from reports.exporters.hti1 import hti1_csv
from reports.exporters.json import report_json
from reports.exporters.pdf import PdfUnavailable, report_pdf
from reports.models import Report, SignOff
from reports.selectors import reports_visible
from reports.services import (
    annex_iv_document,
    hti1_profile,
    model_card_document,
    monitoring_report_generate,
    report_content_sha256,
    report_generate_for_run,
    report_sign,
    source_attribute_record,
)


class SignOffOutput(serializers.ModelSerializer):
    signed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = SignOff
        fields = ["id", "report", "signed_by", "role", "statement", "report_sha256", "signed_at"]


class ReportOutput(serializers.ModelSerializer):
    html_url = serializers.SerializerMethodField()
    sign_offs = SignOffOutput(many=True, read_only=True)

    class Meta:
        model = Report
        fields = [
            "id",
            "kind",
            "audit_run",
            "ai_model",
            "period_start",
            "period_end",
            "version",
            "title",
            "sha256",
            "created_at",
            "html_url",
            "sign_offs",
            "data",
        ]

    def get_html_url(self, report: Report) -> str:
        return f"/reports/{report.pk}/"


class ReportCreateApi(GovernanceApi):
    @extend_schema(request=None, responses={201: ReportOutput})
    def post(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(audit_runs_visible(request.user, token=self.token), pk=run_id)
        report = report_generate_for_run(run=run, actor=request.user)
        return Response(ReportOutput(report).data, status=status.HTTP_201_CREATED)


class MonitoringReportCreateApi(GovernanceApi):
    class MonitoringReportInput(serializers.Serializer):
        start = serializers.DateField(help_text="First day of the period")
        end = serializers.DateField(help_text="Day after the last day of the period")

    @extend_schema(request=MonitoringReportInput, responses={201: ReportOutput})
    def post(self, request: Request, model_id: int) -> Response:
        ai_model = get_object_or_404(ai_models_visible(request.user, token=self.token), pk=model_id)
        data = self.MonitoringReportInput(data=request.data)
        data.is_valid(raise_exception=True)
        report = monitoring_report_generate(ai_model=ai_model, actor=request.user, **data.validated_data)
        return Response(ReportOutput(report).data, status=status.HTTP_201_CREATED)


class ReportDetailApi(GovernanceApi):
    @extend_schema(responses=ReportOutput)
    def get(self, request: Request, report_id: int) -> Response:
        report = get_object_or_404(reports_visible(request.user, token=self.token), pk=report_id)
        return Response(ReportOutput(report).data)


class ReportSignOffListCreateApi(GovernanceApi):
    class SignOffInput(serializers.Serializer):
        statement = serializers.CharField(help_text="What you attest, e.g. 'Reviewed by the AI committee on ...'")

    @extend_schema(responses=SignOffOutput(many=True))
    def get(self, request: Request, report_id: int) -> Response:
        report = get_object_or_404(reports_visible(request.user, token=self.token), pk=report_id)
        return self.paginate(report.sign_offs.select_related("signed_by"), SignOffOutput)

    @extend_schema(request=SignOffInput, responses={201: SignOffOutput})
    def post(self, request: Request, report_id: int) -> Response:
        report = get_object_or_404(reports_visible(request.user, token=self.token), pk=report_id)
        data = self.SignOffInput(data=request.data)
        data.is_valid(raise_exception=True)
        sign_off = report_sign(report=report, actor=request.user, statement=data.validated_data["statement"])
        return Response(SignOffOutput(sign_off).data, status=status.HTTP_201_CREATED)


class ReportPdfApi(GovernanceApi):
    @extend_schema(
        responses={(200, "application/pdf"): OpenApiResponse(description="The report, its sign-offs appended")}
    )
    def get(self, request: Request, report_id: int) -> HttpResponse:
        report = get_object_or_404(reports_visible(request.user, token=self.token), pk=report_id)
        if report_content_sha256(report.html, report.data) != report.sha256:
            raise ServiceError(
                f"report {report.pk} no longer matches its sha256 {report.sha256}; it is not rendered", status=409
            )
        sign_offs = [
            {
                "signed_by": s.signed_by.get_username(),
                "role": s.role,
                "signed_at": s.signed_at.strftime("%Y-%m-%d %H:%M"),
                "statement": s.statement,
            }
            for s in report.sign_offs.select_related("signed_by")
        ]
        try:
            pdf = report_pdf(report.html, sha256=report.sha256, sign_offs=sign_offs)
        except PdfUnavailable as exc:
            raise ServiceError(str(exc), status=503) from None
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="report-{report.pk}-v{report.version}.pdf"'
        response["X-Report-SHA256"] = report.sha256
        return response


class ReportJsonApi(GovernanceApi):
    """The report's frozen data in a versioned envelope; raw figures only for auditors, approvers and admins."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "raw",
                bool,
                description="Include the audit's unsuppressed result (internal use: auditor, approver or admin role)",
            )
        ],
        responses={200: OpenApiResponse(description="See reports/exporters/schemas/report-v2.schema.json")},
    )
    def get(self, request: Request, report_id: int) -> Response:
        report = get_object_or_404(reports_visible(request.user, token=self.token), pk=report_id)
        raw = request.query_params.get("raw") in ("1", "true")
        if raw:
            require_role(
                request.user,
                report.organization,
                {Role.AUDITOR, Role.APPROVER, Role.ADMIN},
                doing="Exporting raw figures",
            )
            if report.audit_run is None:
                raise ValidationError({"raw": "raw figures exist for audit reports only"})
        body = report_json(report, raw=raw)
        if raw:
            event_record(
                organization=report.organization,
                actor=request.user,
                action="report.raw_exported",
                obj=report,
                after={"sha256": report.sha256},
            )
        response = Response(body)
        response["X-Report-SHA256"] = report.sha256
        if raw:
            response["X-Contains-Small-Cells"] = "true"
        return response


class ReportVerifyApi(GovernanceApi):
    class ReportVerifyOutput(serializers.Serializer):
        stored_sha256 = serializers.CharField()
        computed_sha256 = serializers.CharField()
        intact = serializers.BooleanField()

    @extend_schema(responses=ReportVerifyOutput)
    def get(self, request: Request, report_id: int) -> Response:
        report = get_object_or_404(reports_visible(request.user, token=self.token), pk=report_id)
        computed = report_content_sha256(report.html, report.data)
        return Response(
            {"stored_sha256": report.sha256, "computed_sha256": computed, "intact": computed == report.sha256}
        )


class ModelHti1Api(GovernanceApi):
    @extend_schema(
        responses={
            200: OpenApiResponse(
                description="{model, completeness: {filled, of, recorded, derived}, attributes: [{key, group, "
                "group_name, label, value, source (recorded | registry | audit | missing), evidence, reviewed_by, "
                "reviewed_at}]}"
            )
        }
    )
    def get(self, request: Request, model_id: int) -> Response:
        ai_model = get_object_or_404(ai_models_visible(request.user, token=self.token), pk=model_id)
        return Response(hti1_profile(ai_model))


class ModelHti1CsvApi(GovernanceApi):
    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(description="One row per HTI-1 attribute")})
    def get(self, request: Request, model_id: int) -> HttpResponse:
        ai_model = get_object_or_404(ai_models_visible(request.user, token=self.token), pk=model_id)
        response = HttpResponse(hti1_csv(hti1_profile(ai_model)), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{ai_model.slug}-hti1-source-attributes.csv"'
        return response


class ModelHti1AttributeApi(GovernanceApi):
    class SourceAttributeInput(serializers.Serializer):
        value = serializers.CharField(allow_blank=True, help_text="Empty to withdraw the recorded value")
        evidence = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)

    @extend_schema(request=SourceAttributeInput, responses={200: OpenApiResponse(description="The model's profile")})
    def put(self, request: Request, model_id: int, key: str) -> Response:
        ai_model = get_object_or_404(ai_models_visible(request.user, token=self.token), pk=model_id)
        data = self.SourceAttributeInput(data=request.data)
        data.is_valid(raise_exception=True)
        source_attribute_record(ai_model=ai_model, key=key, actor=request.user, **data.validated_data)
        return Response(hti1_profile(ai_model))


class AnnexIvApi(GovernanceApi):
    @extend_schema(
        responses={
            200: OpenApiResponse(
                description="EU AI Act Annex IV outline: {summary, sections: [{number, title, status (filled | "
                "partial | missing), items: [{label, value, evidence}], missing: [...]}]}"
            )
        }
    )
    def get(self, request: Request, version_id: int) -> Response:
        version = get_object_or_404(model_versions_visible(request.user, token=self.token), pk=version_id)
        return Response(annex_iv_document(model_version=version))


class ModelCardXmlApi(GovernanceApi):
    @extend_schema(
        parameters=[
            OpenApiParameter("run", int, description="The audit the key metrics come from; default the latest")
        ],
        responses={
            (200, "application/xml"): OpenApiResponse(
                description="CHAI Applied Model Card v0.2, validated against the CHAI XSD"
            )
        },
    )
    def get(self, request: Request, version_id: int) -> HttpResponse:
        version = get_object_or_404(model_versions_visible(request.user, token=self.token), pk=version_id)
        run = None
        if "run" in request.query_params:
            if not request.query_params["run"].isdigit():
                raise ValidationError({"run": "must be the id of an audit run of this version"})
            runs = audit_runs_visible(request.user, token=self.token).filter(model_version=version)
            run = get_object_or_404(runs, pk=int(request.query_params["run"]))
        xml = model_card_xml(model_card_document(model_version=version, run=run))
        response = HttpResponse(xml, content_type="application/xml; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="{version.ai_model.slug}-{version.version}-chai-model-card.xml"'
        )
        return response


@login_required
def report_html(request: HttpRequest, report_id: int) -> HttpResponse:
    """The frozen HTML of a report, exactly as stored."""
    report = get_object_or_404(reports_visible(request.user), pk=report_id)
    response = HttpResponse(report.html, content_type="text/html; charset=utf-8")
    response["X-Report-SHA256"] = report.sha256
    return response
