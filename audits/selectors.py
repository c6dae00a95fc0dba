"""Reads of audit runs, scoped to what the caller may see."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from audits.models import AuditRun
from governance.models import ApiToken, ModelVersion
from governance.selectors import organizations_visible


def audit_runs_visible(user: Any, *, token: ApiToken | None = None) -> QuerySet[AuditRun]:
    return AuditRun.objects.filter(organization__in=organizations_visible(user, token=token)).select_related(
        "organization", "model_version", "model_version__ai_model", "dataset", "reference_dataset"
    )


def audit_run_verdict(run: AuditRun) -> dict[str, Any]:
    """The gate's answer for a run: its own verdict and findings, and the comparison with the deployed version.

    1. Until the run is finished the answer is `pending` (or `error` if it failed).
    2. The baseline is the model's deployed version (the latest to enter that stage), through its
       latest succeeded run, preferring one on the same dataset.
    3. The overall verdict fails when the run's policy verdict fails or any group is worse than the
       deployed version's beyond the policy's non-inferiority margin.
    """
    from audits.engines.comparison import compare_with_deployed
    from audits.engines.policy import Policy

    answer: dict[str, Any] = {
        "run": run.pk,
        "status": run.status,
        "verdict": run.verdict or None,
        "findings": [],
        "comparison": None,
        "overall": "pending",
    }
    if run.status == AuditRun.Status.FAILED:
        answer.update(overall="error", error=run.error)
        return answer
    if run.status != AuditRun.Status.SUCCEEDED or not run.result:
        return answer
    answer["findings"] = list(
        run.findings.exclude(severity="info").values(
            "severity", "category", "metric", "attribute", "group", "column", "value", "ci_low", "ci_high", "message"
        )
    )
    deployed = (
        ModelVersion.objects.filter(ai_model_id=run.model_version.ai_model_id, stage=ModelVersion.Stage.DEPLOYED)
        .exclude(pk=run.model_version_id)
        .order_by("-stage_changed_at", "-pk")
        .first()
    )
    comparison: dict[str, Any]
    if deployed is None:
        comparison = {"verdict": "no_baseline", "reason": "no other version of this model is deployed"}
    else:
        finished = deployed.audit_runs.filter(status=AuditRun.Status.SUCCEEDED).order_by("-finished_at")
        baseline = finished.filter(dataset_id=run.dataset_id).first() or finished.first()
        if baseline is None or not baseline.result:
            comparison = {
                "verdict": "no_baseline",
                "reason": f"deployed version {deployed.version} has no finished audit",
            }
        else:
            comparison = compare_with_deployed(run.result, baseline.result, Policy.from_dict(run.result["policy"]))
            comparison.update(
                deployed_version={"id": deployed.pk, "version": deployed.version},
                deployed_run=baseline.pk,
                same_dataset=baseline.dataset_id == run.dataset_id,
            )
    answer["comparison"] = comparison
    answer["overall"] = "fail" if run.verdict == "fail" or comparison["verdict"] == "fail" else "pass"
    return answer
