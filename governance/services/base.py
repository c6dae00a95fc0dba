"""The service layer's shared parts: its error, the role check, the governance event."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import models

from governance.middleware import current_request_id
from governance.models import (
    GovernanceEvent,
    Organization,
)
from governance.selectors import role_in


class ServiceError(Exception):
    """A request the service refuses, with a message for the person who made it."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


class SystemActor:
    """The service acting on its own behalf (a schedule firing): allowed what its configuration asks, and
    recorded in events with no user and its name."""

    is_superuser = True
    is_authenticated = True
    pk = None

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name


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
    """Record one governance action with the request it came from, appended to its organization's hash chain."""
    from governance.audit_trail import event_append

    actor_id = getattr(actor, "pk", None)
    if isinstance(actor, SystemActor):
        after = {**(after or {}), "by": actor.name}
    return event_append(
        organization=organization,
        actor_id=actor_id,
        actor_name=actor.name if isinstance(actor, SystemActor) else (actor.get_username() if actor_id else ""),
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        before=before,
        after=after,
        request_id=current_request_id(),
    )
