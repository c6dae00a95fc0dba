"""Audit runs and their results. The AuditRun row, not the broker, is the truth about a run."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from governance.models import Dataset, ModelVersion, Organization


class AuditRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    FINISHED = frozenset({Status.SUCCEEDED, Status.FAILED})

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="audit_runs")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="audit_runs")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="audit_runs")
    reference_dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.PROTECT, related_name="reference_audit_runs"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A running run belongs to the worker that claimed it until its lease lapses.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Incremented by each claim; a worker may write results only under its own attempt.
    attempt = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    drift_report_file = models.FileField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Used by the sweeper, every minute, to find lost dispatches and lapsed leases.
            models.Index(fields=["status", "lease_expires_at"], name="auditrun_sweep_idx"),
        ]

    def __str__(self) -> str:
        return f"Audit #{self.pk} of {self.model_version} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def verdict_summary(self) -> str:
        if not self.result:
            return ""
        drift = self.result.get("drift") or {}
        return "dataset drift" if drift.get("dataset_drift") else "no dataset drift"


class MetricResult(models.Model):
    """One number an audit produced, with what it is about."""

    class Category(models.TextChoices):
        FAIRNESS = "fairness", "Fairness"
        DRIFT = "drift", "Drift"
        QUALITY = "quality", "Data quality"

    run = models.ForeignKey(AuditRun, on_delete=models.CASCADE, related_name="metrics")
    category = models.CharField(max_length=20, choices=Category.choices)
    metric = models.CharField(max_length=80)
    attribute = models.CharField(max_length=200, blank=True)
    group = models.CharField(max_length=200, blank=True)
    reference_group = models.CharField(max_length=200, blank=True)
    column = models.CharField(max_length=200, blank=True)
    value = models.FloatField(null=True, blank=True)
    n = models.BigIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "category", "attribute", "group", "column", "metric"]
        indexes = [models.Index(fields=["run", "category"])]

    def __str__(self) -> str:
        where = " ".join(x for x in (self.attribute, self.group, self.column) if x)
        return f"{self.metric} {where} = {self.value}"
