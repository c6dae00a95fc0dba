"""Audit policies: the one a run is held to, and changing a model's."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import transaction

from audits.engines.errors import TableError
from audits.models import AuditPolicy, AuditRun
from governance.models import OWNER_ROLES, AIModel
from governance.services import ServiceError, event_record, require_role

if TYPE_CHECKING:
    from audits.engines.policy import Policy

logger = logging.getLogger(__name__)


def audit_policy_for(run: AuditRun) -> Policy:
    """The policy the run's model is held to: its own, else the defaults."""
    return audit_policy_for_model(run.model_version.ai_model)


def audit_policy_for_model(ai_model: AIModel) -> Policy:
    """The policy a model is held to now: its own, else the defaults."""
    from audits.engines.policy import Policy

    stored = AuditPolicy.objects.filter(ai_model_id=ai_model.pk).first()
    return Policy.from_dict(stored.as_dict()) if stored else Policy()


@transaction.atomic
def audit_policy_update(*, ai_model: AIModel, actor: Any, **fields: Any) -> AuditPolicy:
    """Set a model's audit policy (created on first use), checked by the engine's rules, and record the change."""
    from audits.engines.policy import Policy

    require_role(actor, ai_model.organization, OWNER_ROLES, doing="Changing an audit policy")
    policy, _ = AuditPolicy.objects.select_for_update().get_or_create(ai_model=ai_model)
    before = policy.as_dict()
    for name, value in fields.items():
        if name not in before:
            raise ServiceError(f"unknown policy field {name!r}", field=name)
        setattr(policy, name, value)
    try:
        Policy.from_dict(policy.as_dict())
    except TableError as exc:
        raise ServiceError(str(exc)) from None
    policy.updated_by = actor if getattr(actor, "pk", None) else None
    policy.save()
    event_record(
        organization=ai_model.organization,
        actor=actor,
        action="audit_policy.changed",
        obj=policy,
        before=before,
        after=policy.as_dict(),
    )
    return policy
