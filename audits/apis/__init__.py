"""REST API of the audits app: runs and policies, and the monitoring of deployed models."""

from audits.apis.monitoring import (
    AlertListApi,
    AlertResolveApi,
    AuditScheduleDetailApi,
    AuditScheduleListCreateApi,
    MetricSeriesApi,
    PredictionBatchListCreateApi,
    ProductionWindowCreateApi,
)
from audits.apis.runs import (
    MEASUREMENT_FIELDS,
    AuditPolicyApi,
    AuditRunDetailApi,
    AuditRunDriftReportApi,
    AuditRunListCreateApi,
    AuditRunMetricsApi,
    AuditRunVerdictApi,
    FindingOutput,
    FindingTriageApi,
)

__all__ = [
    "MEASUREMENT_FIELDS",
    "AlertListApi",
    "AlertResolveApi",
    "AuditPolicyApi",
    "AuditRunDetailApi",
    "AuditRunDriftReportApi",
    "AuditRunListCreateApi",
    "AuditRunMetricsApi",
    "AuditRunVerdictApi",
    "AuditScheduleDetailApi",
    "AuditScheduleListCreateApi",
    "FindingOutput",
    "FindingTriageApi",
    "MetricSeriesApi",
    "PredictionBatchListCreateApi",
    "ProductionWindowCreateApi",
]
