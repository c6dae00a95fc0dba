"""Audit runs and their results. The AuditRun row, not the broker, is the truth about a run."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from governance.models import AIModel, Dataset, ModelVersion, Organization


class AuditPolicy(models.Model):
    """What a model's audits hold it to; a model without one is held to the defaults."""

    class CiRule(models.TextChoices):
        INTERVAL = "interval", "Breach only when the whole 95% interval is past the threshold"
        POINT = "point", "Breach when the point estimate is past the threshold"

    class Correction(models.TextChoices):
        HOLM = "holm", "Holm (family-wise error)"
        BH = "benjamini-hochberg", "Benjamini-Hochberg (false discovery rate)"

    ai_model = models.OneToOneField(AIModel, on_delete=models.CASCADE, related_name="audit_policy")
    bounds = models.JSONField(
        default=dict,
        blank=True,
        help_text='Overrides of the default accepted ranges, e.g. {"disparate_impact": {"low": 0.9, "high": 1.1, '
        '"severity": "critical"}}',
    )
    min_group_size = models.PositiveIntegerField(default=30)
    ci_rule = models.CharField(max_length=20, choices=CiRule.choices, default=CiRule.INTERVAL)
    correction = models.CharField(max_length=30, choices=Correction.choices, default=Correction.HOLM)
    operating_point = models.FloatField(default=0.5, help_text="Score threshold when the data has no prediction")
    fail_on = models.JSONField(
        default=list, blank=True, help_text='Severities that fail the verdict; default ["critical"]'
    )
    intersection_order = models.PositiveSmallIntegerField(
        default=2, help_text="Intersections of up to this many protected attributes (1: none)"
    )
    non_inferiority_margin = models.FloatField(
        default=0.02, help_text="How much worse than the deployed version a candidate may be for any group"
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "audit policies"

    def __str__(self) -> str:
        return f"Policy of {self.ai_model}"

    def as_dict(self) -> dict[str, object]:
        """The policy as the engines take it (audits.engines.policy.Policy.from_dict)."""
        return {
            "bounds": self.bounds or {},
            "min_group_size": self.min_group_size,
            "ci_rule": self.ci_rule,
            "correction": self.correction,
            "operating_point": self.operating_point,
            "fail_on": self.fail_on or ["critical"],
            "intersection_order": self.intersection_order,
            "non_inferiority_margin": self.non_inferiority_margin,
        }


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
    # Rows of the current step read so far (the reference first, then the audited data), for the run page.
    rows_read = models.PositiveBigIntegerField(default=0)
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
    verdict = models.CharField(max_length=10, blank=True, help_text="pass or fail under the policy, once finished")
    drift_report_file = models.FileField(max_length=300, blank=True)
    # Set when a schedule started the run: which schedule, and the window of the production stream audited.
    schedule = models.ForeignKey(
        "audits.AuditSchedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    # The audits whose findings count in the verdict (fairness, drift, quality); empty for all.
    checks = models.JSONField(default=list, blank=True)
    # Set when the attempt fanned out over partitions: what every task reads the data with
    # (engines.audit.AuditPlan). The run's tasks (RunTask) then carry the leases.
    plan = models.JSONField(null=True, blank=True, editable=False)

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


class RunTask(models.Model):
    """One task of a run fanned out over partitions: the statistics of one partition, or the merge.

    The tasks of an attempt form a chord whose counter is this table: the reference's partitions
    (if any), then the audited data's, then one merge; with a reference, Evidently's report is drawn
    from samples by a task of its own beside them. The last task of a stage to finish queues the
    next stage, under a lock on the run. Each task is claimed and leased like a run; the
    sweeper hands back a task whose lease lapsed, and the run fails only once a task has been
    tried AUDIT_TASK_MAX_TRIES times, naming it. Statistics are stored, with their sha256, until
    the run finishes; nothing but the merge writes a result.
    """

    class Stage(models.TextChoices):
        REFERENCE = "reference", "Reference partition"
        DATA = "data", "Data partition"
        REPORT = "report", "Evidently's drift report"
        MERGE = "merge", "Merge"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for the stage before"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    run = models.ForeignKey(AuditRun, on_delete=models.CASCADE, related_name="tasks")
    attempt = models.PositiveIntegerField()
    stage = models.CharField(max_length=10, choices=Stage.choices)
    index = models.PositiveIntegerField(default=0)
    partition = models.ForeignKey(
        "governance.DatasetPartition", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.WAITING)
    tries = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="time the finishing try took")
    rows = models.BigIntegerField(default=0)
    statistics_file = models.CharField(max_length=300, blank=True)
    statistics_sha256 = models.CharField(max_length=64, blank=True)
    last_error = models.TextField(blank=True)
    # The report task's sample sizes: {"reference": rows, "current": rows}.
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "attempt", "stage", "index"]
        constraints = [
            models.UniqueConstraint(fields=["run", "attempt", "stage", "index"], name="one_task_per_partition")
        ]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="runtask_sweep_idx")]

    def __str__(self) -> str:
        return f"{self.get_stage_display()} {self.index + 1} of run {self.run_id} (attempt {self.attempt})"


class Measurement(models.Model):
    """A number about a metric of a group, a comparison or a column, with its 95% interval."""

    metric = models.CharField(max_length=80)
    attribute = models.CharField(max_length=200, blank=True)
    group = models.CharField(max_length=200, blank=True)
    reference_group = models.CharField(max_length=200, blank=True)
    column = models.CharField(max_length=200, blank=True)
    value = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)

    class Meta:
        abstract = True


class MetricResult(Measurement):
    """One number an audit produced, with what it is about."""

    class Category(models.TextChoices):
        FAIRNESS = "fairness", "Fairness"
        DRIFT = "drift", "Drift"
        QUALITY = "quality", "Data quality"

    run = models.ForeignKey(AuditRun, on_delete=models.CASCADE, related_name="metrics")
    category = models.CharField(max_length=20, choices=Category.choices)
    p_value = models.FloatField(null=True, blank=True, help_text="adjusted for the run's comparisons")
    status = models.CharField(max_length=20, blank=True, help_text="pass, fail or insufficient_data")
    n = models.BigIntegerField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run", "category", "attribute", "group", "column", "metric"]
        indexes = [models.Index(fields=["run", "category"])]

    def __str__(self) -> str:
        where = " ".join(x for x in (self.attribute, self.group, self.column) if x)
        return f"{self.metric} {where} = {self.value}"


class Finding(Measurement):
    """A breach of the policy found by a run, in words, with the figures behind it."""

    class Severity(models.TextChoices):
        CRITICAL = "critical", "Critical"
        WARNING = "warning", "Warning"
        INFO = "info", "Info"

    class ReviewStatus(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        MITIGATED = "mitigated", "Mitigated"
        RISK_ACCEPTED = "risk_accepted", "Risk accepted"

    run = models.ForeignKey(AuditRun, on_delete=models.CASCADE, related_name="findings")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    category = models.CharField(max_length=20)
    threshold_low = models.FloatField(null=True, blank=True)
    threshold_high = models.FloatField(null=True, blank=True)
    message = models.TextField()
    review_status = models.CharField(max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "id"]
        indexes = [models.Index(fields=["run", "severity"])]

    def __str__(self) -> str:
        return f"{self.severity}: {self.message[:80]}"


class FindingReview(models.Model):
    """One triage decision on a finding: who moved it from which status to which, when, and why."""

    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="reviews")
    action = models.CharField(max_length=20)
    from_status = models.CharField(max_length=20)
    to_status = models.CharField(max_length=20)
    justification = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["reviewed_at", "id"]

    def __str__(self) -> str:
        return f"{self.action} of finding {self.finding_id} by {self.reviewed_by}"
