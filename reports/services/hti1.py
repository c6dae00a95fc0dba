"""ONC HTI-1 source attributes of a model: recorded by people, filled from the registry and audit evidence."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audits.models import AuditRun, AuditSchedule
from governance.models import WRITE_ROLES, AIModel, Dataset
from governance.services import ServiceError, event_record, require_role
from reports.hti1 import ATTRIBUTES, BY_KEY, derived_values
from reports.models import SourceAttribute


@transaction.atomic
def source_attribute_record(*, ai_model: AIModel, key: str, value: str, evidence: str, actor: Any) -> None:
    """Record (or, with an empty value, withdraw) a person's value of one attribute; they become its reviewer.

    The value before the change is kept in the governance event, so a withdrawn value is not lost.
    """
    require_role(actor, ai_model.organization, WRITE_ROLES, doing="Recording HTI-1 source attributes")
    if key not in BY_KEY:
        raise ServiceError(f"unknown HTI-1 attribute {key!r}; see GET /api/v1/models/{{id}}/hti1/", field="key")
    current = SourceAttribute.objects.select_for_update().filter(ai_model=ai_model, key=key).first()
    before = {"value": current.value, "evidence": current.evidence} if current else None
    value, evidence = value.strip(), evidence.strip()
    if not value:
        if current is not None:
            current.delete()
    else:
        SourceAttribute.objects.update_or_create(
            ai_model=ai_model,
            key=key,
            defaults={
                "value": value,
                "evidence": evidence[:500],
                "reviewed_by": actor if getattr(actor, "pk", None) else None,
                "reviewed_at": timezone.now(),
            },
        )
    event_record(
        organization=ai_model.organization,
        actor=actor,
        action="hti1_attribute.recorded" if value else "hti1_attribute.withdrawn",
        obj=ai_model,
        before={"key": key, **before} if before else None,
        after={"key": key, "value": value, "evidence": evidence} if value else None,
    )


def _run_facts(run: AuditRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    dataset = run.dataset
    return {
        "label": f"Audit run {run.pk} of version {run.model_version.version} on {dataset.name} "
        f"({dataset.row_count} rows, sha256 {dataset.sha256[:12]}, {run.finished_at:%Y-%m-%d})",
        "url": f"/api/v1/audits/{run.pk}/",
        "result": run.result,
    }


def hti1_facts(ai_model: AIModel) -> dict[str, Any]:
    """What the registry and the audits say about a model, for the derived attributes."""
    from audits.services import audit_policy_for_model

    datasets = Dataset.objects.filter(ai_model=ai_model).order_by("-created_at")
    training = datasets.filter(kind=Dataset.Kind.REFERENCE).first() or datasets.first()
    runs = (
        AuditRun.objects.filter(model_version__ai_model=ai_model, status=AuditRun.Status.SUCCEEDED)
        .select_related("dataset", "model_version")
        .order_by("-finished_at")
    )
    internal = runs.filter(dataset__kind=Dataset.Kind.EVALUATION).first()
    local = runs.filter(schedule__isnull=False).first() or runs.filter(dataset__kind=Dataset.Kind.PRODUCTION).first()
    schedules = AuditSchedule.objects.filter(ai_model=ai_model)
    return {
        "model": {
            "intended_use": ai_model.intended_use,
            "target_population": ai_model.target_population,
            "intended_users": ai_model.intended_users,
            "decision_role": ai_model.get_decision_role_display(),
            "out_of_scope_uses": ai_model.out_of_scope_uses,
            "url": f"/api/v1/models/{ai_model.pk}/",
        },
        "column_roles": training.column_roles if training else None,
        "roles_evidence": f"/api/v1/datasets/{training.pk}/" if training else "",
        "policy": audit_policy_for_model(ai_model).to_dict(),
        "policy_evidence": f"/api/v1/models/{ai_model.pk}/policy/",
        "internal_run": _run_facts(internal),
        "local_run": _run_facts(local),
        "schedules": [
            {
                "name": s.name,
                "cadence": s.cadence,
                "window_days": s.window_days,
                "checks": s.checks,
                "enabled": s.enabled,
            }
            for s in schedules
        ],
        "schedules_evidence": f"/api/v1/models/{ai_model.pk}/schedules/",
    }


def hti1_profile(ai_model: AIModel) -> dict[str, Any]:
    """The 31 attributes of a model, each recorded, derived or missing, and the completeness score.

    A recorded value wins over a derived one: the service's text is a draft that a reviewer may replace.
    """
    recorded = {a.key: a for a in SourceAttribute.objects.filter(ai_model=ai_model).select_related("reviewed_by")}
    derived = derived_values(hti1_facts(ai_model))
    attributes = []
    for attribute in ATTRIBUTES:
        row: dict[str, Any] = {
            "key": attribute.key,
            "group": attribute.group,
            "group_name": attribute.group_name,
            "label": attribute.label,
            "value": None,
            "source": "missing",
            "evidence": "",
            "reviewed_by": None,
            "reviewed_at": None,
        }
        stored = recorded.get(attribute.key)
        if stored is not None:
            row.update(
                value=stored.value,
                source="recorded",
                evidence=stored.evidence,
                reviewed_by=stored.reviewed_by.get_username() if stored.reviewed_by else None,
                reviewed_at=stored.reviewed_at.isoformat(),
            )
        elif attribute.key in derived:
            value, evidence = derived[attribute.key]
            row.update(value=value, source=attribute.derived_from, evidence=evidence)
        attributes.append(row)
    filled = sum(1 for row in attributes if row["value"])
    return {
        "model": ai_model.slug,
        "completeness": {
            "filled": filled,
            "of": len(ATTRIBUTES),
            "recorded": len(recorded),
            "derived": sum(1 for row in attributes if row["source"] in ("registry", "audit")),
        },
        "attributes": attributes,
    }
