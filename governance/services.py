"""Writes to the registry. Every governance action goes through here and leaves a GovernanceEvent."""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.utils import timezone

from governance.middleware import current_request_id
from governance.models import (
    APPROVE_ROLES,
    WRITE_ROLES,
    AIModel,
    ApiToken,
    Dataset,
    GovernanceEvent,
    Membership,
    ModelVersion,
    Organization,
    Role,
)
from governance.selectors import role_in

TOKEN_PREFIX = "gov_"  # noqa: S105 (a public prefix, not a secret)


class ServiceError(Exception):
    """A request the service refuses, with a message for the person who made it."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def require_role(user: Any, organization: Organization, roles: Iterable[str], *, doing: str) -> None:
    """Refuse unless the user holds one of the roles in the organization (superusers always may)."""
    if getattr(user, "is_superuser", False):
        return
    role = role_in(user, organization)
    if role is None or role not in set(roles):
        raise PermissionDenied(f"{doing} needs one of the roles {', '.join(sorted(roles))} in {organization.slug}")


def event_record(
    *,
    organization: Organization | None,
    actor: Any,
    action: str,
    obj: models.Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> GovernanceEvent:
    """Record one governance action with the request it came from."""
    return GovernanceEvent.objects.create(
        organization=organization,
        actor=actor if getattr(actor, "pk", None) else None,
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        before=before,
        after=after,
        request_id=current_request_id(),
    )


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


def _sha256_of(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    stream.seek(0)
    for block in iter(lambda: stream.read(1024 * 1024), b""):
        digest.update(block)
    stream.seek(0)
    return digest.hexdigest()


def dataset_upload(
    *,
    organization: Organization,
    name: str,
    file: IO[bytes],
    filename: str,
    column_roles: dict[str, Any],
    actor: Any,
    kind: str = Dataset.Kind.EVALUATION,
    ai_model: AIModel | None = None,
    description: str = "",
    period_start: date | None = None,
    period_end: date | None = None,
) -> Dataset:
    """Validate an uploaded CSV or Parquet file against its column roles, store it as Parquet and freeze it.

    1. Refuse files over DATASET_MAX_UPLOAD_BYTES and callers without a write role.
    2. Read the file (CSV or Parquet) and check the roles against it; a bad file raises TableError.
    3. Convert once to Parquet in row groups and store it through Django's storage.
    4. Scan every column for direct identifiers (kept with the dataset, raised by its audits).
    5. Record sha256 of the upload and of the Parquet file, rows and schema, and the event.

    """
    import pyarrow.parquet as pq

    from audits.engines.identifiers import scan_identifiers
    from audits.engines.tables import ColumnRoles, read_table, validate_roles

    require_role(actor, organization, WRITE_ROLES, doing="Uploading a dataset")
    if ai_model is not None and ai_model.organization_id != organization.pk:
        raise ServiceError("the model belongs to another organization", field="ai_model")
    if kind not in Dataset.Kind.values:
        raise ServiceError(f"kind must be one of {', '.join(Dataset.Kind.values)}", field="kind")
    if period_start and period_end and period_start > period_end:
        raise ServiceError("period_start is after period_end", field="period_start")
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(0)
    if size > settings.DATASET_MAX_UPLOAD_BYTES:
        raise ServiceError(
            f"the file is {size} bytes; the limit is {settings.DATASET_MAX_UPLOAD_BYTES} bytes "
            "(DATASET_MAX_UPLOAD_BYTES)",
            field="file",
            status=413,
        )
    roles = ColumnRoles.from_dict(column_roles)
    original_sha256 = _sha256_of(file)
    loaded = read_table(file, filename=filename)
    validate_roles(loaded.table, roles)

    buffer = io.BytesIO()
    pq.write_table(loaded.table, buffer, row_group_size=settings.DATASET_PARQUET_ROW_GROUP_SIZE, compression="zstd")
    parquet_bytes = buffer.getvalue()
    parquet_sha256 = hashlib.sha256(parquet_bytes).hexdigest()
    stored_name = default_storage.save(
        f"datasets/{organization.slug}/{uuid.uuid4().hex}.parquet", ContentFile(parquet_bytes)
    )
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(
                organization=organization,
                ai_model=ai_model,
                name=name,
                kind=kind,
                description=description,
                period_start=period_start,
                period_end=period_end,
                file=stored_name,
                original_filename=filename[-255:],
                original_format=loaded.source_format,
                original_sha256=original_sha256,
                sha256=parquet_sha256,
                size_bytes=len(parquet_bytes),
                row_count=loaded.table.num_rows,
                columns=loaded.columns,
                column_roles=roles.to_dict(),
                identifier_scan=scan_identifiers(loaded.table),
                uploaded_by=actor if getattr(actor, "pk", None) else None,
            )
            event_record(
                organization=organization,
                actor=actor,
                action="dataset.uploaded",
                obj=dataset,
                after={
                    "name": name,
                    "sha256": parquet_sha256,
                    "original_sha256": original_sha256,
                    "rows": dataset.row_count,
                    "column_roles": dataset.column_roles,
                },
            )
    except Exception:
        # The row was not written, so the stored file is orphaned: remove it.
        default_storage.delete(stored_name)
        raise
    return dataset


def _token_digest(plaintext: str) -> str:
    return hmac.new(settings.API_TOKEN_HMAC_KEY.encode(), plaintext.encode(), hashlib.sha256).hexdigest()


@transaction.atomic
def api_token_create(
    *,
    organization: Organization,
    user: Any,
    name: str,
    scope: str,
    actor: Any,
    expires_in: timedelta | None = timedelta(days=90),
) -> tuple[ApiToken, str]:
    """Create a token for a member of the organization; the plaintext is returned once and never stored."""
    if scope not in ApiToken.Scope.values:
        raise ServiceError(f"scope must be one of {', '.join(ApiToken.Scope.values)}", field="scope")
    if actor != user:
        require_role(actor, organization, {Role.ADMIN}, doing="Creating a token for someone else")
    if not getattr(user, "is_superuser", False) and role_in(user, organization) is None:
        raise ServiceError(f"{user.get_username()} is not a member of {organization.slug}", field="user")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        organization=organization,
        user=user,
        name=name,
        prefix=plaintext[: len(TOKEN_PREFIX) + 6],
        digest=_token_digest(plaintext),
        scope=scope,
        expires_at=timezone.now() + expires_in if expires_in else None,
    )
    event_record(
        organization=organization,
        actor=actor,
        action="api_token.created",
        obj=token,
        after={
            "name": name,
            "prefix": token.prefix,
            "scope": scope,
            "user": user.get_username(),
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, plaintext


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: Any) -> ApiToken:
    """Revoke a token; it stops working at once."""
    if actor != token.user:
        require_role(actor, token.organization, {Role.ADMIN}, doing="Revoking someone else's token")
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db()
    event_record(
        organization=token.organization,
        actor=actor,
        action="api_token.revoked",
        obj=token,
        after={"prefix": token.prefix},
    )
    return token


def api_token_authenticate(plaintext: str) -> ApiToken | None:
    """The live token with this plaintext, or None; notes when it was last used (at most once a minute)."""
    if not plaintext.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user", "organization")
        .filter(digest=_token_digest(plaintext), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
