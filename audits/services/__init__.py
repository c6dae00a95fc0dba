"""Audit runs: creation, dispatch, claim, execution, results, policies, and the sweep that loses none."""

from audits.services.errors import AuditInputError
from audits.services.execution import audit_run_execute
from audits.services.lifecycle import (
    audit_run_claim,
    audit_run_create,
    audit_run_dispatch,
    audit_run_renew_lease,
    audit_runs_sweep,
)
from audits.services.policies import audit_policy_for, audit_policy_for_model, audit_policy_update
from audits.services.results import finding_rows, metric_rows

__all__ = [
    "AuditInputError",
    "audit_policy_for",
    "audit_policy_for_model",
    "audit_policy_update",
    "audit_run_claim",
    "audit_run_create",
    "audit_run_dispatch",
    "audit_run_execute",
    "audit_run_renew_lease",
    "audit_runs_sweep",
    "finding_rows",
    "metric_rows",
]
