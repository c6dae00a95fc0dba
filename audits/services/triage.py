"""Findings triage: acknowledge, mitigate, accept the risk, or reopen; each decision recorded with who, when, why."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audits.models import Finding, FindingReview
from governance.models import APPROVE_ROLES, WRITE_ROLES
from governance.services import ServiceError, event_record, require_role

Status = Finding.ReviewStatus
# action: (the statuses it may start from, the status it leads to, the roles that may take it, words needed)
ACTIONS: dict[str, tuple[frozenset[str], str, frozenset[str], int]] = {
    "acknowledge": (frozenset({Status.OPEN}), Status.ACKNOWLEDGED, WRITE_ROLES, 0),
    "mitigate": (frozenset({Status.OPEN, Status.ACKNOWLEDGED}), Status.MITIGATED, WRITE_ROLES, 10),
    # Accepting a risk is a governance decision: an approver's, with a written justification.
    "accept_risk": (frozenset({Status.OPEN, Status.ACKNOWLEDGED}), Status.RISK_ACCEPTED, APPROVE_ROLES, 20),
    "reopen": (frozenset({Status.ACKNOWLEDGED, Status.MITIGATED, Status.RISK_ACCEPTED}), Status.OPEN, WRITE_ROLES, 10),
}


PAST = {"acknowledge": "acknowledged", "mitigate": "mitigated", "accept_risk": "risk-accepted", "reopen": "reopened"}


@transaction.atomic
def finding_triage(*, finding: Finding, action: str, justification: str, actor: Any) -> FindingReview:
    """Move a finding along its review, if the action fits its status and the actor's role.

    1. The action must exist and start from the finding's status; mitigating, accepting the risk and
       reopening need a written justification (what was done, why the risk is acceptable, what changed).
    2. Accepting a risk needs the approver or admin role; the other actions any writer.
    3. The status changes only if it is still the one read (a concurrent triage makes this fail), and the
       decision is kept as a FindingReview and a governance event.
    """
    if action not in ACTIONS:
        raise ServiceError(f"action must be one of {', '.join(ACTIONS)}", field="action")
    allowed_from, to_status, roles, words = ACTIONS[action]
    organization = finding.run.organization
    require_role(actor, organization, roles, doing=f"To {action.replace('_', ' ')} a finding")
    justification = justification.strip()
    if len(justification) < words:
        raise ServiceError(
            f"{action.replace('_', ' ')} needs a written justification of at least {words} characters",
            field="justification",
        )
    from_status = finding.review_status
    if from_status not in allowed_from:
        raise ServiceError(
            f"a finding that is {Status(from_status).label.lower()} cannot be {PAST[action]}",
            field="action",
            status=409,
        )
    if not Finding.objects.filter(pk=finding.pk, review_status=from_status).update(review_status=to_status):
        raise ServiceError("the finding was triaged by someone else meanwhile; reload it", status=409)
    finding.review_status = to_status
    review = FindingReview.objects.create(
        finding=finding,
        action=action,
        from_status=from_status,
        to_status=to_status,
        justification=justification,
        reviewed_by=actor if getattr(actor, "pk", None) else None,
    )
    event_record(
        organization=organization,
        actor=actor,
        action="finding.triaged",
        obj=finding,
        before={"review_status": from_status},
        after={"review_status": to_status, "action": action, "justification": justification},
    )
    return review
