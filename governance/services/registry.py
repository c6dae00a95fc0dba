"""Organizations, memberships, models and versions: registering and changing them."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from governance.models import (
    APPROVE_ROLES,
    WRITE_ROLES,
    AIModel,
    Membership,
    ModelVersion,
    Organization,
    Role,
)
from governance.services.base import ServiceError, event_record, require_role


@transaction.atomic
def organization_create(*, name: str, slug: str, creator: Any) -> Organization:
    """Create an organization and make its creator its admin."""
    if Organization.objects.filter(slug=slug).exists():
        raise ServiceError(f"an organization with slug {slug!r} already exists", field="slug")
    organization = Organization.objects.create(name=name, slug=slug)
    if getattr(creator, "pk", None):
        Membership.objects.create(user=creator, organization=organization, role=Role.ADMIN)
    event_record(
        organization=organization,
        actor=creator,
        action="organization.created",
        obj=organization,
        after={"name": name, "slug": slug},
    )
    return organization


@transaction.atomic
def membership_set(*, organization: Organization, user: Any, role: str, actor: Any) -> Membership:
    """Give a user a role in an organization, or change it."""
    require_role(actor, organization, {Role.ADMIN}, doing="Changing memberships")
    membership, created = Membership.objects.get_or_create(
        user=user, organization=organization, defaults={"role": role}
    )
    before = None if created else {"role": membership.role}
    if not created and membership.role == Role.ADMIN and role != Role.ADMIN:
        _refuse_last_admin(membership, doing="change the role of")
    if not created and membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    event_record(
        organization=organization,
        actor=actor,
        action="membership.set",
        obj=membership,
        before=before,
        after={"user": user.get_username(), "role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Any) -> None:
    """Take a user out of an organization; its last admin stays."""
    organization = membership.organization
    require_role(actor, organization, {Role.ADMIN}, doing="Changing memberships")
    if membership.role == Role.ADMIN:
        _refuse_last_admin(membership, doing="remove")
    event_record(
        organization=organization,
        actor=actor,
        action="membership.removed",
        obj=membership,
        before={"user": membership.user.get_username(), "role": membership.role},
    )
    membership.delete()


def _refuse_last_admin(membership: Membership, *, doing: str) -> None:
    # The admins are locked so that two admins cannot each demote the other at once.
    admins = Membership.objects.select_for_update().filter(organization=membership.organization, role=Role.ADMIN)
    if not [pk for pk in admins.values_list("pk", flat=True) if pk != membership.pk]:
        raise ServiceError(
            f"cannot {doing} the last admin of {membership.organization.slug}: give someone else the admin role first",
            field="role",
        )


AI_MODEL_FIELDS = (
    "name",
    "slug",
    "intended_use",
    "intended_users",
    "target_population",
    "decision_role",
    "clinical_risk_level",
    "out_of_scope_uses",
    "status",
    "alert_emails",
)


@transaction.atomic
def ai_model_create(*, organization: Organization, actor: Any, owner: Any = None, **fields: Any) -> AIModel:
    """Register a model in an organization."""
    require_role(actor, organization, WRITE_ROLES, doing="Registering a model")
    unknown = set(fields) - set(AI_MODEL_FIELDS)
    if unknown:
        raise ServiceError(f"unknown model fields: {', '.join(sorted(unknown))}")
    if AIModel.objects.filter(organization=organization, slug=fields.get("slug")).exists():
        raise ServiceError(
            f"a model with slug {fields.get('slug')!r} already exists in {organization.slug}", field="slug"
        )
    ai_model = AIModel(
        organization=organization, owner=owner or (actor if getattr(actor, "pk", None) else None), **fields
    )
    ai_model.full_clean()
    ai_model.save()
    event_record(
        organization=organization,
        actor=actor,
        action="ai_model.created",
        obj=ai_model,
        after={f: getattr(ai_model, f) for f in AI_MODEL_FIELDS},
    )
    return ai_model


@transaction.atomic
def model_version_create(
    *, ai_model: AIModel, version: str, actor: Any, artifact_uri: str = "", artifact_sha256: str = "", notes: str = ""
) -> ModelVersion:
    """Register a version of a model, in stage draft."""
    require_role(actor, ai_model.organization, WRITE_ROLES, doing="Registering a model version")
    if ModelVersion.objects.filter(ai_model=ai_model, version=version).exists():
        raise ServiceError(f"version {version!r} of {ai_model.slug} already exists", field="version")
    if artifact_sha256 and (len(artifact_sha256) != 64 or any(c not in "0123456789abcdef" for c in artifact_sha256)):
        raise ServiceError("artifact_sha256 must be 64 lowercase hex digits", field="artifact_sha256")
    model_version = ModelVersion.objects.create(
        ai_model=ai_model,
        version=version,
        artifact_uri=artifact_uri,
        artifact_sha256=artifact_sha256,
        notes=notes,
        created_by=actor if getattr(actor, "pk", None) else None,
    )
    event_record(
        organization=ai_model.organization,
        actor=actor,
        action="model_version.created",
        obj=model_version,
        after={"version": version, "artifact_uri": artifact_uri, "artifact_sha256": artifact_sha256, "stage": "draft"},
    )
    return model_version


def model_version_register(
    *, ai_model: AIModel, version: str, actor: Any, artifact_uri: str = "", artifact_sha256: str = "", notes: str = ""
) -> tuple[ModelVersion, bool]:
    """Register a version, or return the one already registered under that version string (CI retries).

    The same version string with a different artifact is refused: a version names one artifact.
    """
    existing = ModelVersion.objects.filter(ai_model=ai_model, version=version).first()
    if existing is None:
        try:
            return model_version_create(
                ai_model=ai_model,
                version=version,
                actor=actor,
                artifact_uri=artifact_uri,
                artifact_sha256=artifact_sha256,
                notes=notes,
            ), True
        except ServiceError:
            # Registered concurrently by another request between our read and our write.
            existing = ModelVersion.objects.filter(ai_model=ai_model, version=version).first()
            if existing is None:
                raise
    require_role(actor, ai_model.organization, WRITE_ROLES, doing="Registering a model version")
    for field, given in (("artifact_uri", artifact_uri), ("artifact_sha256", artifact_sha256)):
        if given and getattr(existing, field) != given:
            raise ServiceError(
                f"version {version!r} of {ai_model.slug} is already registered with another {field}; "
                "register the new artifact under a new version string",
                field=field,
                status=409,
            )
    return existing, False


@transaction.atomic
def model_version_transition(*, model_version: ModelVersion, to_stage: str, actor: Any) -> ModelVersion:
    """Move a version along its lifecycle, if the transition is allowed and the actor may make it.

    1. Check the transition against ModelVersion.TRANSITIONS.
    2. Check the role: approver or admin for approved, deployed and retired; any writer otherwise.
    3. Update only if the stage is still the one read (a concurrent change makes this fail).
    4. Record who and when, and the event.
    """
    from_stage = model_version.stage
    if to_stage not in ModelVersion.Stage.values:
        raise ServiceError(
            f"unknown stage {to_stage!r}; stages are {', '.join(ModelVersion.Stage.values)}", field="stage"
        )
    if to_stage not in ModelVersion.TRANSITIONS[from_stage]:
        allowed = ", ".join(sorted(ModelVersion.TRANSITIONS[from_stage])) or "none"
        raise ServiceError(
            f"a version in stage {from_stage} cannot move to {to_stage} (allowed: {allowed})", field="stage", status=409
        )
    organization = model_version.ai_model.organization
    roles = APPROVE_ROLES if to_stage in ModelVersion.GATED_STAGES else WRITE_ROLES
    require_role(actor, organization, roles, doing=f"Moving a version to {to_stage}")
    now = timezone.now()
    changed = ModelVersion.objects.filter(pk=model_version.pk, stage=from_stage).update(
        stage=to_stage, stage_changed_at=now, stage_changed_by=actor if getattr(actor, "pk", None) else None
    )
    if changed != 1:
        raise ServiceError("the version's stage changed meanwhile; reload and try again", field="stage", status=409)
    model_version.refresh_from_db()
    event_record(
        organization=organization,
        actor=actor,
        action="model_version.stage_changed",
        obj=model_version,
        before={"stage": from_stage},
        after={"stage": to_stage},
    )
    return model_version
