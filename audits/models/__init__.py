"""Models of the audits app: runs and their results, and the monitoring of deployed models."""

from audits.models.monitoring import Alert, AuditSchedule, PredictionBatch
from audits.models.runs import (
    AuditPolicy,
    AuditRun,
    Finding,
    FindingReview,
    Measurement,
    MetricResult,
    RunTask,
)

__all__ = [
    "Alert",
    "AuditPolicy",
    "AuditRun",
    "AuditSchedule",
    "Finding",
    "FindingReview",
    "Measurement",
    "MetricResult",
    "PredictionBatch",
    "RunTask",
]
