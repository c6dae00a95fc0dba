"""API tokens: shown once, stored as an HMAC, scoped, expiring, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from governance.models import (
    ApiToken,
    Organization,
    Role,
)
from governance.selectors import role_in
from governance.services.base import ServiceError, event_record, require_role

TOKEN_PREFIX = "gov_"  # noqa: S105 (a public prefix, not a secret)


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
