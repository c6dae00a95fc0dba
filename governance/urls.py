from django.contrib import admin
from django.shortcuts import redirect
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from audits import apis as audit_apis
from governance import apis
from reports import apis as report_apis

api_v1 = [
    path("organizations/", apis.OrganizationListCreateApi.as_view(), name="organization-list"),
    path("tokens/", apis.ApiTokenListCreateApi.as_view(), name="token-list"),
    path("tokens/<int:token_id>/", apis.ApiTokenRevokeApi.as_view(), name="token-revoke"),
    path("models/", apis.AIModelListCreateApi.as_view(), name="model-list"),
    path("models/<int:model_id>/", apis.AIModelDetailApi.as_view(), name="model-detail"),
    path("models/<int:model_id>/versions/", apis.ModelVersionListCreateApi.as_view(), name="model-version-list"),
    path("models/<int:model_id>/policy/", audit_apis.AuditPolicyApi.as_view(), name="model-policy"),
    path(
        "models/<int:model_id>/schedules/", audit_apis.AuditScheduleListCreateApi.as_view(), name="model-schedule-list"
    ),
    path("models/<int:model_id>/series/", audit_apis.MetricSeriesApi.as_view(), name="model-metric-series"),
    path(
        "models/<int:model_id>/monitoring-reports/",
        report_apis.MonitoringReportCreateApi.as_view(),
        name="model-monitoring-report-create",
    ),
    path("models/<int:model_id>/hti1/", report_apis.ModelHti1Api.as_view(), name="model-hti1"),
    path("models/<int:model_id>/hti1/csv/", report_apis.ModelHti1CsvApi.as_view(), name="model-hti1-csv"),
    path(
        "models/<int:model_id>/hti1/<slug:key>/",
        report_apis.ModelHti1AttributeApi.as_view(),
        name="model-hti1-attribute",
    ),
    path("schedules/<int:schedule_id>/", audit_apis.AuditScheduleDetailApi.as_view(), name="schedule-detail"),
    path("findings/<int:finding_id>/triage/", audit_apis.FindingTriageApi.as_view(), name="finding-triage"),
    path("alerts/", audit_apis.AlertListApi.as_view(), name="alert-list"),
    path("alerts/<int:alert_id>/resolve/", audit_apis.AlertResolveApi.as_view(), name="alert-resolve"),
    path("versions/<int:version_id>/", apis.ModelVersionDetailApi.as_view(), name="model-version-detail"),
    path(
        "versions/<int:version_id>/transition/",
        apis.ModelVersionTransitionApi.as_view(),
        name="model-version-transition",
    ),
    path(
        "versions/<int:version_id>/batches/",
        audit_apis.PredictionBatchListCreateApi.as_view(),
        name="model-version-batches",
    ),
    path(
        "versions/<int:version_id>/windows/",
        audit_apis.ProductionWindowCreateApi.as_view(),
        name="model-version-windows",
    ),
    path(
        "versions/<int:version_id>/model-card.xml",
        report_apis.ModelCardXmlApi.as_view(),
        name="model-version-chai-model-card",
    ),
    path("versions/<int:version_id>/annex-iv/", report_apis.AnnexIvApi.as_view(), name="model-version-annex-iv"),
    path("datasets/", apis.DatasetListCreateApi.as_view(), name="dataset-list"),
    path("datasets/<int:dataset_id>/", apis.DatasetDetailApi.as_view(), name="dataset-detail"),
    path("events/", apis.GovernanceEventListApi.as_view(), name="event-list"),
    path("events/verify/", apis.GovernanceEventVerifyApi.as_view(), name="event-verify"),
    path("audits/", audit_apis.AuditRunListCreateApi.as_view(), name="audit-list"),
    path("audits/<int:run_id>/", audit_apis.AuditRunDetailApi.as_view(), name="audit-detail"),
    path("audits/<int:run_id>/metrics/", audit_apis.AuditRunMetricsApi.as_view(), name="audit-metrics"),
    path("audits/<int:run_id>/verdict/", audit_apis.AuditRunVerdictApi.as_view(), name="audit-verdict"),
    path("audits/<int:run_id>/drift-report/", audit_apis.AuditRunDriftReportApi.as_view(), name="audit-drift-report"),
    path("audits/<int:run_id>/reports/", report_apis.ReportCreateApi.as_view(), name="audit-report-create"),
    path("reports/<int:report_id>/", report_apis.ReportDetailApi.as_view(), name="report-detail"),
    path("reports/<int:report_id>/verify/", report_apis.ReportVerifyApi.as_view(), name="report-verify"),
    path("reports/<int:report_id>/pdf/", report_apis.ReportPdfApi.as_view(), name="report-pdf"),
    path("reports/<int:report_id>/json/", report_apis.ReportJsonApi.as_view(), name="report-json"),
    path(
        "reports/<int:report_id>/sign-offs/", report_apis.ReportSignOffListCreateApi.as_view(), name="report-sign-offs"
    ),
]

urlpatterns = [
    path("", lambda request: redirect("admin:index")),
    path("admin/", admin.site.urls),
    path("reports/<int:report_id>/", report_apis.report_html, name="report-html"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include(api_v1)),
]
