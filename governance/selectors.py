"""Reads from the registry, always scoped to what the caller may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from governance.models import AIModel, ApiToken, Dataset, Membership, ModelVersion, Organization, Role


def role_in(user: Any, organization: Organization) -> str | None:
    """The user's role in the organization, or None for a non-member."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Membership.objects.filter(user=user, organization=organization).values_list("role", flat=True).first()


def organizations_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[Organization]:
    """Organizations the caller may read: a token sees its own organization only."""
    if not getattr(user, "is_authenticated", False):
        return Organization.objects.none()
    if token is not None:
        organizations = Organization.objects.filter(pk=token.organization_id)
        if getattr(user, "is_superuser", False):
            return organizations
        return organizations.filter(memberships__user=user)
    if getattr(user, "is_superuser", False):
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user)


def ai_models_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[AIModel]:
    return AIModel.objects.filter(organization__in=organizations_visible(user, token=token)).select_related(
        "organization", "owner"
    )


def model_versions_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(
        ai_model__organization__in=organizations_visible(user, token=token)
    ).select_related("ai_model", "ai_model__organization")


def datasets_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[Dataset]:
    return (
        Dataset.objects.filter(organization__in=organizations_visible(user, token=token))
        .select_related("organization", "ai_model")
        .prefetch_related("partitions")
    )


def api_tokens_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[ApiToken]:
    """A person's own tokens, and every token of the organizations they administer."""
    if not getattr(user, "is_authenticated", False):
        return ApiToken.objects.none()
    organizations = organizations_visible(user, token=token)
    tokens = ApiToken.objects.filter(organization__in=organizations).select_related("organization", "user")
    if getattr(user, "is_superuser", False):
        return tokens
    administered = Membership.objects.filter(user=user, role=Role.ADMIN).values("organization")
    return tokens.filter(Q(user=user) | Q(organization__in=administered))
