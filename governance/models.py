"""The registry: organizations and their people, models, versions, datasets, tokens, events."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models


class WriteOnce(models.Model):
    """A record written once by its service and never changed: what audits, reports and signatures cite.

    Refusing later saves keeps an admin form or a stray script from altering it; `change_hint` tells
    what to do instead.
    """

    change_hint: ClassVar[str] = "make a new one instead of editing it"

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise ValueError(f"{str(self._meta.verbose_name).capitalize()} {self.pk} is frozen; {self.change_hint}")
        super().save(*args, **kwargs)


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    AUDITOR = "auditor", "Auditor"
    MODEL_OWNER = "model_owner", "Model owner"
    APPROVER = "approver", "Approver"
    ADMIN = "admin", "Admin"


ALL_ROLES = frozenset(Role)
# Roles that may register models, upload data and start audits.
WRITE_ROLES = frozenset({Role.AUDITOR, Role.MODEL_OWNER, Role.APPROVER, Role.ADMIN})
# Roles that may move a version into approved, deployed or retired.
APPROVE_ROLES = frozenset({Role.APPROVER, Role.ADMIN})
# Roles that may set what a model is audited against and when: its policy and its schedules.
OWNER_ROLES = frozenset({Role.MODEL_OWNER, Role.APPROVER, Role.ADMIN})
ADMIN_ROLES = frozenset({Role.ADMIN})


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="one_membership_per_org")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} as {self.role}"


class AIModel(models.Model):
    class DecisionRole(models.TextChoices):
        INFORMS = "informs", "Informs"
        AUGMENTS = "augments", "Augments"
        REPLACES = "replaces", "Replaces"

    class RiskLevel(models.TextChoices):
        LOW = "low", "Low"
        MODERATE = "moderate", "Moderate"
        HIGH = "high", "High"

    class Status(models.TextChoices):
        IN_DEVELOPMENT = "in_development", "In development"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="ai_models")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_models"
    )
    intended_use = models.TextField()
    intended_users = models.TextField(blank=True)
    target_population = models.TextField(blank=True)
    decision_role = models.CharField(max_length=20, choices=DecisionRole.choices, default=DecisionRole.INFORMS)
    clinical_risk_level = models.CharField(max_length=20, choices=RiskLevel.choices, default=RiskLevel.MODERATE)
    out_of_scope_uses = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.IN_DEVELOPMENT)
    alert_emails = models.TextField(
        blank=True, help_text="Addresses that get this model's alerts besides its owner, comma-separated"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "AI model"
        ordering = ["organization", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "slug"], name="model_slug_unique_in_org")]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    class Stage(models.TextChoices):
        DRAFT = "draft", "Draft"
        VALIDATION = "validation", "Validation"
        APPROVED = "approved", "Approved"
        DEPLOYED = "deployed", "Deployed"
        RETIRED = "retired", "Retired"

    # The lifecycle: a version moves forward, may be sent back from validation to
    # draft, and may be retired from any stage but retired.
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        Stage.DRAFT: frozenset({Stage.VALIDATION, Stage.RETIRED}),
        Stage.VALIDATION: frozenset({Stage.DRAFT, Stage.APPROVED, Stage.RETIRED}),
        Stage.APPROVED: frozenset({Stage.DEPLOYED, Stage.RETIRED}),
        Stage.DEPLOYED: frozenset({Stage.RETIRED}),
        Stage.RETIRED: frozenset(),
    }
    # Entering these stages needs the approver role.
    GATED_STAGES: ClassVar[frozenset[str]] = frozenset({Stage.APPROVED, Stage.DEPLOYED, Stage.RETIRED})

    ai_model = models.ForeignKey(AIModel, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=100)
    artifact_uri = models.CharField(max_length=500, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    stage = models.CharField(max_length=20, choices=Stage.choices, default=Stage.DRAFT)
    stage_changed_at = models.DateTimeField(null=True, blank=True)
    stage_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ai_model", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["ai_model", "version"], name="version_unique_per_model")]

    def __str__(self) -> str:
        return f"{self.ai_model.name} {self.version}"

    @property
    def organization(self) -> Organization:
        return self.ai_model.organization


class Dataset(WriteOnce):
    """An uploaded table, stored once as Parquet and frozen: nothing about it changes after upload."""

    change_hint = "upload a new dataset instead of editing it"

    class Kind(models.TextChoices):
        REFERENCE = "reference", "Reference (training / development)"
        EVALUATION = "evaluation", "Evaluation (held-out or external)"
        PRODUCTION = "production", "Production (current period)"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="datasets")
    ai_model = models.ForeignKey(AIModel, null=True, blank=True, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.EVALUATION)
    description = models.TextField(blank=True, help_text="Provenance: where the data comes from, how it was drawn.")
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    file = models.FileField(max_length=300, editable=False, help_text="The first (often the only) partition")
    original_filename = models.CharField(max_length=255, editable=False)
    original_format = models.CharField(max_length=10, editable=False)
    original_sha256 = models.CharField(max_length=64, editable=False)
    sha256 = models.CharField(
        max_length=64,
        editable=False,
        help_text="sha256 of the stored Parquet file; of a dataset in several partitions, the sha256 of "
        "their sha256s in order, one hex digest and a newline each",
    )
    size_bytes = models.BigIntegerField(editable=False)
    row_count = models.BigIntegerField(editable=False)
    partition_count = models.PositiveIntegerField(default=1, editable=False)
    columns = models.JSONField(editable=False, help_text="[{name, dtype}] in file order")
    column_roles = models.JSONField(editable=False)
    identifier_scan = models.JSONField(
        default=list, editable=False, help_text="Direct identifiers found at upload: column and kind, never a value"
    )
    provenance = models.JSONField(
        default=dict, editable=False, help_text="For a window of a production stream: the window and its batches"
    )

    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.row_count} rows)"

    @property
    def is_partitioned(self) -> bool:
        return self.partition_count > 1


class DatasetPartition(WriteOnce):
    """One Parquet file of a dataset: its rows first_row .. first_row + row_count - 1, in upload order.

    A dataset is stored as partitions of at most DATASET_PARTITION_ROWS rows (and about
    DATASET_PARTITION_BYTES in memory), so that no object in storage and no task holds more than that,
    and an audit can read the partitions on as many workers. Every dataset has at least one; the
    dataset's `file` is its first.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="partitions")
    index = models.PositiveIntegerField()
    file = models.FileField(max_length=300, editable=False)
    first_row = models.BigIntegerField(editable=False)
    row_count = models.BigIntegerField(editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    size_bytes = models.BigIntegerField(editable=False)

    class Meta:
        ordering = ["dataset", "index"]
        constraints = [models.UniqueConstraint(fields=["dataset", "index"], name="one_partition_per_index")]

    def __str__(self) -> str:
        return f"partition {self.index + 1} of {self.dataset.partition_count} of {self.dataset.name}"

    @property
    def rows_text(self) -> str:
        """The rows it holds, numbered from 1 as a person reads a file."""
        return f"rows {self.first_row + 1:,} to {self.first_row + self.row_count:,}"


class ApiToken(models.Model):
    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        CI = "ci", "CI"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_tokens")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The first characters of the token, shown in lists so a token can be recognised.
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class AppendOnlyError(Exception):
    """An attempt to change or remove a governance event."""


class GovernanceEventQuerySet(models.QuerySet["GovernanceEvent"]):
    """Events are appended, never updated or deleted in bulk (PostgreSQL's trigger refuses it too)."""

    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("governance events are append-only: they cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("governance events are append-only: they cannot be deleted")

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        raise AppendOnlyError("governance events are append-only: they cannot be updated")


class GovernanceEvent(models.Model):
    """One governance action: who did what to which object, with the state before and after.

    The events of each organization form a hash chain (governance.audit_trail): every event stores
    the hash of the one before it and a hash of its own content, so an event altered, removed or
    slipped in later breaks the chain at that point. They are written only by `event_record`.
    """

    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    # PROTECT: the people named in the trail are deactivated, never deleted.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The actor's username as it was (or the system's name): what the hash covers.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=60)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=60)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(db_index=True)
    # The chain: the organization's id (0 for events of no organization), the place in it, the links.
    chain = models.PositiveBigIntegerField(editable=False)
    sequence = models.PositiveBigIntegerField(editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, unique=True, editable=False)

    objects = GovernanceEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]
        constraints = [models.UniqueConstraint(fields=["chain", "sequence"], name="one_event_per_place_in_chain")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"governance event {self.pk} is append-only: it cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"governance event {self.pk} is append-only: it cannot be deleted")


class IdempotencyRecord(models.Model):
    """The first response to a request sent with an Idempotency-Key, replayed to every retry of it."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    # What the key was first used for: a retry must be the same request.
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=20, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "key"], name="idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"


class WebhookEndpoint(models.Model):
    class Event(models.TextChoices):
        RUN_FINISHED = "run.finished", "Audit run finished"
        CRITICAL_FINDING = "finding.critical", "Critical finding"
        REPORT_SIGNED = "report.signed", "Report signed"
        ALERT_OPENED = "alert.opened", "Alert opened"
        ALERT_RESOLVED = "alert.resolved", "Alert resolved"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="Event types to send; empty for all")
    # Encrypted at rest (governance.webhooks); shown once when the endpoint is created.
    secret_encrypted = models.TextField(editable=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.url

    def wants(self, event: str) -> bool:
        return self.active and (not self.events or event in self.events)


class WebhookDelivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed after retries"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.event} to {self.endpoint_id} ({self.state})"


class WebhookAttempt(models.Model):
    """One try of a delivery: when, what came back, how long it took."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(auto_now_add=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["attempted_at"]

    def __str__(self) -> str:
        return f"attempt at {self.attempted_at}: {self.response_code or self.error}"
