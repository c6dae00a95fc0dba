"""Monitoring of deployed models: the production stream, the schedules that audit it, and the alerts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from governance.models import AIModel, Dataset, ModelVersion, Organization, WriteOnce


class PredictionBatch(WriteOnce):
    """One batch of a model version's production stream, stored once as Parquet and frozen.

    A predictions batch holds what the model said (record id, optional event time, score or
    prediction, protected attributes, features, and the outcome if already known). An outcomes
    batch holds outcomes that became known later, joined to the predictions by record id.
    """

    # Frozen, as a Dataset is: the window snapshots cite batches by hash.
    change_hint = "upload a new batch instead"

    class Kind(models.TextChoices):
        PREDICTIONS = "predictions", "Predictions"
        OUTCOMES = "outcomes", "Outcomes (joined later by record id)"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="prediction_batches")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="prediction_batches")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    file = models.FileField(max_length=300, editable=False)
    original_filename = models.CharField(max_length=255, editable=False)
    original_format = models.CharField(max_length=10, editable=False)
    original_sha256 = models.CharField(max_length=64, editable=False)
    sha256 = models.CharField(max_length=64, editable=False, help_text="sha256 of the stored Parquet file")
    size_bytes = models.BigIntegerField(editable=False)
    row_count = models.BigIntegerField(editable=False)
    columns = models.JSONField(editable=False)
    column_roles = models.JSONField(editable=False, help_text="record_id, timestamp and the audit roles")
    identifier_scan = models.JSONField(default=list, editable=False)
    # The span of the batch's event times (its timestamp column, else the time it was received).
    first_event_at = models.DateTimeField(editable=False)
    last_event_at = models.DateTimeField(editable=False)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "prediction batches"
        ordering = ["-created_at", "-id"]
        indexes = [
            # Used to pick the batches that overlap a window of the stream.
            models.Index(fields=["model_version", "kind", "last_event_at"], name="batch_window_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} batch #{self.pk} of {self.model_version} ({self.row_count} rows)"


class AuditSchedule(models.Model):
    """Audit a model's production stream on a cron expression or an interval.

    One beat task claims due schedules with a conditional UPDATE of next_run_at, so a schedule
    fires once per due time however many sweeps race; no beat PeriodicTask exists per schedule.
    """

    class Check(models.TextChoices):
        FAIRNESS = "fairness", "Fairness"
        DRIFT = "drift", "Drift against the reference"
        QUALITY = "quality", "Data quality"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="audit_schedules")
    ai_model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="audit_schedules")
    name = models.CharField(max_length=200)
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The version whose stream is audited; empty for the version deployed when the schedule fires",
    )
    cron = models.CharField(
        max_length=100, blank=True, help_text='Cron expression "minute hour day-of-month month day-of-week"'
    )
    interval_minutes = models.PositiveIntegerField(null=True, blank=True, help_text="Or: every this many minutes")
    timezone = models.CharField(max_length=64, default="UTC", help_text="Time zone of the cron expression")
    checks = models.JSONField(default=list, blank=True, help_text="fairness, drift, quality; empty for all")
    window_days = models.PositiveIntegerField(default=7, help_text="Audit the last this many days of the stream")
    reference_dataset = models.ForeignKey(
        Dataset,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Drift reference; empty for the model's latest reference dataset",
    )
    grace_minutes = models.PositiveIntegerField(
        default=120, help_text="Overdue when no run has finished this long after a due time"
    )
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_fired_at = models.DateTimeField(null=True, blank=True)
    # The due time the last firing answered, and what it led to (a run, or why none).
    last_due_at = models.DateTimeField(null=True, blank=True)
    last_run = models.ForeignKey("audits.AuditRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_outcome = models.CharField(max_length=500, blank=True)
    overdue_since = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["ai_model", "name"]
        indexes = [
            # Used by the beat task, every minute, to find due schedules.
            models.Index(fields=["enabled", "next_run_at"], name="schedule_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.ai_model})"

    @property
    def cadence(self) -> str:
        return f"cron {self.cron} ({self.timezone})" if self.cron else f"every {self.interval_minutes} min"


class Alert(models.Model):
    """One incident about a model, notified once when it opens, and open until it is resolved.

    Repeats of the same incident (another failed run, the same critical finding again) add to
    `occurrences` and `last_seen_at` instead of notifying again.
    """

    class Kind(models.TextChoices):
        RUN_FAILED = "run_failed", "Audit run failed"
        CRITICAL_FINDING = "critical_finding", "Critical finding"
        SCHEDULE_OVERDUE = "schedule_overdue", "Schedule overdue"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="alerts")
    ai_model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    # What makes two events the same incident, e.g. "critical_finding:v3:fairness:disparate_impact:race:Black".
    incident_key = models.CharField(max_length=300)
    title = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField(default=timezone.now, editable=False)
    last_seen_at = models.DateTimeField()
    occurrences = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=500, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notified = models.JSONField(default=dict, blank=True, help_text="Who was told: e-mail addresses, webhooks")

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # One open alert per incident: the database, not a read-then-write, keeps repeats out.
            models.UniqueConstraint(
                fields=["ai_model", "incident_key"],
                condition=Q(resolved_at__isnull=True),
                name="one_open_alert_per_incident",
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
