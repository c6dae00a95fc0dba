"""Reports: frozen snapshots of finished audit runs, or of a deployed model's monitoring over a period,
identified by the sha256 of their content."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from audits.models import AuditRun
from governance.models import AIModel, Organization, WriteOnce


class Report(WriteOnce):
    # The stored content is what a sign-off binds to.
    change_hint = "generate a new version instead of editing it"

    class Kind(models.TextChoices):
        AUDIT = "audit", "Audit of a version (pre-deployment)"
        MONITORING = "monitoring", "Monitoring of a deployed model over a period"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="reports")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.AUDIT)
    # An audit report cites one run; a monitoring report cites a model and a period.
    audit_run = models.ForeignKey(AuditRun, null=True, blank=True, on_delete=models.PROTECT, related_name="reports")
    ai_model = models.ForeignKey(
        AIModel, null=True, blank=True, on_delete=models.PROTECT, related_name="monitoring_reports"
    )
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True, help_text="Exclusive")
    version = models.PositiveIntegerField(default=1)
    title = models.CharField(max_length=300)
    html = models.TextField(editable=False)
    data = models.JSONField(editable=False)
    sha256 = models.CharField(max_length=64, editable=False, help_text="sha256 of the HTML and canonical JSON")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["audit_run", "version"], name="report_version_unique"),
            # Also keeps two monthly sweeps from making the same month's report twice.
            models.UniqueConstraint(
                fields=["ai_model", "period_start", "period_end", "version"],
                condition=models.Q(kind="monitoring"),
                name="monitoring_report_version_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"


class SignOff(WriteOnce):
    """An approver's signature on one report version: bound to the sha256 the report had when signed."""

    change_hint = "a sign-off is final; a changed mind is a new report version and a new sign-off"

    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="sign_offs")
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The signer's role when signing, kept: roles change later.
    role = models.CharField(max_length=20)
    statement = models.TextField(help_text="What the signer attests, in their words")
    report_sha256 = models.CharField(max_length=64, editable=False)
    signed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["signed_at", "id"]
        constraints = [models.UniqueConstraint(fields=["report", "signed_by"], name="one_sign_off_per_signer")]

    def __str__(self) -> str:
        return f"{self.report} signed by {self.signed_by}"


class SourceAttribute(models.Model):
    """One ONC HTI-1 source attribute of a model as a person recorded it, with its evidence and review.

    Attributes not recorded fall back to what the registry and the audits show (reports.hti1).
    """

    ai_model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="source_attributes")
    key = models.CharField(max_length=60)
    value = models.TextField()
    evidence = models.CharField(max_length=500, blank=True, help_text="A link or reference that supports the value")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField()

    class Meta:
        verbose_name = "HTI-1 source attribute"
        ordering = ["ai_model", "key"]
        constraints = [models.UniqueConstraint(fields=["ai_model", "key"], name="one_value_per_source_attribute")]

    def __str__(self) -> str:
        return f"{self.key} of {self.ai_model}"
