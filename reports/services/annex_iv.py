"""The EU AI Act Annex IV technical documentation of a model version: its nine sections, each filled from the
evidence the service holds and marked missing where it holds none."""

from __future__ import annotations

from typing import Any

from audits.models import Alert, AuditRun, AuditSchedule, Finding
from audits.services.policies import audit_policy_for_model
from governance.models import Dataset, GovernanceEvent, ModelVersion
from reports.hti1 import fairness_summary, performance_summary
from reports.models import SignOff
from reports.services.hti1 import hti1_profile

SECTIONS = (
    (1, "General description of the AI system"),
    (2, "Detailed description of the elements of the AI system and of the process for its development"),
    (3, "Monitoring, functioning and control of the AI system"),
    (4, "Appropriateness of the performance metrics"),
    (5, "Risk management system (Article 9)"),
    (6, "Changes made to the system through its lifecycle"),
    (7, "Harmonised standards and other specifications applied"),
    (8, "EU declaration of conformity"),
    (9, "Post-market monitoring plan (Article 72)"),
)


def _item(label: str, value: Any, evidence: str = "") -> dict[str, Any]:
    return {"label": label, "value": value, "evidence": evidence}


def _section(number: int, items: list[dict[str, Any]], missing: list[str]) -> dict[str, Any]:
    filled = [i for i in items if i["value"] not in (None, "", [])]
    status = "missing" if not filled else ("partial" if missing else "filled")
    return {"number": number, "title": dict(SECTIONS)[number], "status": status, "items": filled, "missing": missing}


def _dataset_sheet(dataset: Dataset) -> dict[str, Any]:
    return {
        "id": dataset.pk,
        "name": dataset.name,
        "kind": dataset.kind,
        "rows": dataset.row_count,
        "sha256": dataset.sha256,
        "period": [dataset.period_start, dataset.period_end] if dataset.period_start else None,
        "provenance": dataset.description or None,
        "column_roles": dataset.column_roles,
    }


def _run_facts(run: AuditRun) -> dict[str, Any]:
    dataset = run.dataset
    return {
        "label": f"Audit run {run.pk} on {dataset.name} ({dataset.row_count} rows, sha256 {dataset.sha256[:12]}, "
        f"{run.finished_at:%Y-%m-%d})",
        "url": f"/api/v1/audits/{run.pk}/",
        "result": run.result,
    }


def annex_iv_document(*, model_version: ModelVersion) -> dict[str, Any]:
    """The nine sections of Annex IV for a version, each `filled`, `partial` or `missing`, with what is missing."""
    ai_model = model_version.ai_model
    hti1 = {row["key"]: row for row in hti1_profile(ai_model)["attributes"]}
    runs = list(
        model_version.audit_runs.filter(status=AuditRun.Status.SUCCEEDED)
        .select_related("dataset")
        .order_by("-finished_at")[:20]
    )
    latest = runs[0] if runs else None
    datasets = Dataset.objects.filter(ai_model=ai_model).order_by("kind", "-created_at")
    sign_offs = SignOff.objects.filter(report__audit_run__model_version=model_version).select_related(
        "report", "signed_by"
    )
    schedules = AuditSchedule.objects.filter(ai_model=ai_model)
    policy = audit_policy_for_model(ai_model)
    findings = Finding.objects.filter(run__model_version=model_version)
    general = _section(
        1,
        [
            _item("Intended purpose", ai_model.intended_use, f"/api/v1/models/{ai_model.pk}/"),
            _item("Provider", hti1["developer"]["value"] or ai_model.organization.name),
            _item("Version", model_version.version, f"/api/v1/versions/{model_version.pk}/"),
            _item(
                "Artifact",
                f"{model_version.artifact_uri} sha256 {model_version.artifact_sha256}".strip()
                if model_version.artifact_uri
                else None,
            ),
            _item("Intended users", ai_model.intended_users),
            _item("Intended patient population", ai_model.target_population),
            _item("Decision role (human oversight, Article 14)", ai_model.get_decision_role_display()),
            _item("Out-of-scope uses", ai_model.out_of_scope_uses),
        ],
        ["Hardware and software the system runs on, and instructions for use (not held by this service)"],
    )
    development = _section(
        2,
        [
            _item("Data sheets", [_dataset_sheet(d) for d in datasets]),
            _item(
                "Validation and testing with metrics of accuracy and of potentially discriminatory impact",
                [f"{performance_summary(_run_facts(r))} {fairness_summary(_run_facts(r))}" for r in runs[:5]],
            ),
            _item(
                "Dated and signed test logs",
                [
                    {
                        "report": s.report_id,
                        "report_sha256": s.report_sha256,
                        "audit_run": s.report.audit_run_id,
                        "signed_by": s.signed_by.get_username(),
                        "role": s.role,
                        "signed_at": s.signed_at.isoformat(),
                        "statement": s.statement,
                    }
                    for s in sign_offs
                ],
            ),
        ],
        [
            "Design specifications, model architecture and training methodology (not held by this service)",
            *([] if sign_offs else ["No signed audit report yet: sign one (POST /api/v1/reports/{id}/sign-offs/)"]),
        ],
    )
    monitoring = _section(
        3,
        [
            _item("Accuracy for specific groups", performance_summary(_run_facts(latest)) if latest else None),
            _item("Fairness for specific groups", fairness_summary(_run_facts(latest)) if latest else None),
            _item("Human oversight", f"The model {ai_model.get_decision_role_display().lower()} clinical decisions"),
        ],
        [] if latest else ["No succeeded audit of this version"],
    )
    metrics = _section(
        4,
        [
            _item("Policy the metrics are judged by", policy.to_dict(), f"/api/v1/models/{ai_model.pk}/policy/"),
            _item("Methods", (latest.result or {}).get("fairness", {}).get("methods") if latest else None),
        ],
        [],
    )
    triage = {status: findings.filter(review_status=status).count() for status in Finding.ReviewStatus.values}
    risk = _section(
        5,
        [
            _item("Clinical risk level", ai_model.get_clinical_risk_level_display()),
            _item("Known risks and limitations", hti1["known_risks"]["value"]),
            _item("Findings of this version's audits by review status", triage if findings.exists() else None),
            _item(
                "Open alerts of the model",
                list(Alert.objects.filter(ai_model=ai_model, resolved_at__isnull=True).values_list("title", flat=True)),
            ),
        ],
        ["The risk management system itself (Article 9): its process and residual-risk acceptance"],
    )
    lifecycle = GovernanceEvent.objects.filter(
        object_type="governance.modelversion", object_id=str(model_version.pk)
    ).order_by("created_at", "id")
    changes = _section(
        6,
        [
            _item(
                "Lifecycle of this version",
                [
                    {
                        "action": e.action,
                        "at": e.created_at.isoformat(),
                        "by": e.actor.get_username() if e.actor else None,
                        "before": e.before,
                        "after": e.after,
                    }
                    for e in lifecycle.select_related("actor")
                ],
            ),
            _item(
                "Versions of the model",
                [
                    {"version": v.version, "stage": v.stage, "created_at": v.created_at.isoformat()}
                    for v in ai_model.versions.order_by("created_at")
                ],
            ),
        ],
        [],
    )
    standards = _section(7, [], ["Harmonised standards or common specifications applied (not held by this service)"])
    declaration = _section(8, [], ["The EU declaration of conformity (not held by this service)"])
    post_market = _section(
        9,
        [
            _item(
                "Scheduled audits of the production stream",
                [
                    {"name": s.name, "cadence": s.cadence, "window_days": s.window_days, "checks": s.checks or "all"}
                    for s in schedules
                    if s.enabled
                ],
                f"/api/v1/models/{ai_model.pk}/schedules/",
            ),
            _item("Monitoring runs so far", model_version.audit_runs.filter(schedule__isnull=False).count() or None),
        ],
        [] if schedules.filter(enabled=True).exists() else ["No enabled audit schedule: create one for the model"],
    )
    sections = [general, development, monitoring, metrics, risk, changes, standards, declaration, post_market]
    return {
        "schema_version": 1,
        "model": ai_model.slug,
        "model_version": model_version.version,
        "summary": {s: sum(1 for x in sections if x["status"] == s) for s in ("filled", "partial", "missing")},
        "sections": sections,
    }
