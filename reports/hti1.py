"""ONC HTI-1 predictive decision-support source attributes (45 CFR 170.315(b)(11)): the 31, in 9 groups.

The catalogue and the text derived from the registry and from audit evidence. No Django import: the
service layer (reports.services_hti1) gathers the facts and the stored values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Attribute:
    key: str
    group: int
    group_name: str
    label: str
    # Where a value can come from when none is recorded: the model's registry entry, audit evidence, or nowhere.
    derived_from: str = ""


def _group(number: int, name: str, *items: tuple[str, str, str]) -> list[Attribute]:
    return [Attribute(key, number, name, label, derived) for key, label, derived in items]


ATTRIBUTES: tuple[Attribute, ...] = tuple(
    _group(
        1,
        "Details and output",
        ("developer", "Name and contact information of the developer", ""),
        ("funding_source", "Funding source of the technical implementation", ""),
        ("output_description", "Description of the value the intervention produces as output", ""),
        ("output_type", "Output type (score, class, free text...)", "audit"),
    )
    + _group(
        2,
        "Purpose",
        ("intended_use", "Intended use of the intervention", "registry"),
        ("intended_population", "Intended patient population", "registry"),
        ("intended_users", "Intended user", "registry"),
        ("decision_role", "Intended decision-making role (informs, augments, replaces)", "registry"),
    )
    + _group(
        3,
        "Cautioned out-of-scope use",
        ("out_of_scope_use", "Tasks, situations or populations the user is cautioned against", "registry"),
        ("known_risks", "Known risks, inappropriate settings and limitations", ""),
    )
    + _group(
        4,
        "Development",
        ("training_criteria", "Exclusion and inclusion criteria of the training data set", ""),
        (
            "demographic_inputs",
            "Use of race, ethnicity, language, sexual orientation, gender identity, sex, date of birth, social "
            "determinants of health and health status assessments as inputs",
            "audit",
        ),
        ("training_representativeness", "Representativeness of the training data on those characteristics", ""),
        ("training_relevance", "Relevance of the training data to the intended deployed setting", ""),
    )
    + _group(
        5,
        "Fairness approaches",
        ("fairness_approach", "Approach to ensure that the output is fair", "audit"),
        ("bias_management", "Approaches to manage, reduce or eliminate bias", ""),
    )
    + _group(
        6,
        "External validation process",
        ("external_data_source", "Data source, clinical setting or environment of the external validation", ""),
        ("external_party", "Party that conducted the external testing", ""),
        ("external_representativeness", "Representativeness of the external data", ""),
        ("external_process", "Process of the external validation", ""),
    )
    + _group(
        7,
        "Quantitative measures of performance",
        (
            "validity_internal",
            "Validity of the intervention in test data from the same source as the training",
            "audit",
        ),
        (
            "fairness_internal",
            "Fairness of the intervention in test data from the same source as the training",
            "audit",
        ),
        ("validity_external", "Validity of the intervention in data external to the training source", ""),
        ("fairness_external", "Fairness of the intervention in data external to the training source", ""),
        ("outcome_evaluation", "References to evaluation of the intervention's use on outcomes", ""),
    )
    + _group(
        8,
        "Ongoing maintenance",
        ("validity_monitoring", "Update and monitoring of validity: how, and how often", "audit"),
        ("validity_local", "Validity of the intervention in local data", "audit"),
        ("fairness_monitoring", "Monitoring of fairness: how, and how often", "audit"),
        ("fairness_local", "Fairness of the intervention in local data", "audit"),
    )
    + _group(
        9,
        "Update schedule",
        ("update_process", "Update and continued validation or fairness assessment schedule", ""),
        ("correction_frequency", "How often the intervention's performance is corrected", ""),
    )
)
BY_KEY = {a.key: a for a in ATTRIBUTES}
assert len(ATTRIBUTES) == 31


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def performance_summary(run: dict[str, Any]) -> str:
    """Validity from a finished run: pooled accuracy, and the range over groups of AUROC and TPR.

    Ranges cover the groups of each single protected attribute with at least the policy's minimum size.
    Pooling accuracy over the groups of one attribute is exact (they partition the rows).
    """
    result = run["result"]
    fairness = result["fairness"]
    minimum = result["policy"]["min_group_size"]
    attribute = next(iter(fairness["references"]), None)
    pooled = [g for g in fairness["groups"] if g["attribute"] == attribute]
    total = sum(g["n"] for g in pooled)
    accuracy = sum(g["accuracy"] * g["n"] for g in pooled if g["accuracy"] is not None) / total if total else None
    single = [g for g in fairness["groups"] if "&" not in g["attribute"] and g["n"] >= minimum]
    parts = [f"accuracy {_fmt(accuracy)} over {total} rows"]
    for metric, name in (("auroc", "AUROC"), ("true_positive_rate", "sensitivity")):
        values = [g[metric] for g in single if g.get(metric) is not None]
        if values:
            parts.append(f"{name} by group from {_fmt(min(values))} to {_fmt(max(values))}")
    return f"{run['label']}: " + "; ".join(parts) + f". Evidence: {run['url']}"


def fairness_summary(run: dict[str, Any]) -> str:
    """Fairness from a finished run: comparisons judged, breaches, the verdict and the furthest disparate impact."""
    result = run["result"]
    disparities = result["fairness"]["disparities"]
    judged = [d for d in disparities if d["status"] in ("pass", "fail")]
    failed = [d for d in judged if d["status"] == "fail"]
    impacts = [d for d in judged if d["metric"] == "disparate_impact" and d["value"] is not None]
    text = (
        f"{run['label']}: {len(judged)} group comparisons judged against the policy, {len(failed)} outside "
        f"their accepted range; verdict {result['verdict']}"
    )
    if impacts:
        furthest = max(impacts, key=lambda d: abs(d["value"] - 1))
        text += (
            f"; furthest disparate impact {_fmt(furthest['value'])} for {furthest['attribute']} = "
            f"{furthest['group']} against {furthest['reference']}"
        )
    return text + f". Evidence: {run['url']}"


def monitoring_summary(schedules: list[dict[str, Any]], *, check: str | None) -> str | None:
    """How and how often a check is monitored: the enabled schedules that include it (any, for None)."""
    lines = [
        f"{s['name']}: {s['cadence']}, over the last {s['window_days']} days of the production stream"
        for s in schedules
        if s["enabled"] and (check is None or not s["checks"] or check in s["checks"])
    ]
    return "; ".join(lines) + " (audit schedules of this service)" if lines else None


def derived_values(facts: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """The attributes the service can fill from the registry and its audits: key -> (value, evidence)."""
    model = facts["model"]
    values: dict[str, tuple[str, str]] = {}
    registry = {
        "intended_use": model["intended_use"],
        "intended_population": model["target_population"],
        "intended_users": model["intended_users"],
        "decision_role": model["decision_role"],
        "out_of_scope_use": model["out_of_scope_uses"],
    }
    for key, text in registry.items():
        if text:
            values[key] = (text, model["url"])
    roles = facts.get("column_roles")
    if roles:
        outputs = [
            text for key, text in (("score", "a risk score"), ("prediction", "a binary class (0/1)")) if roles.get(key)
        ]
        values["output_type"] = (" and ".join(outputs), facts["roles_evidence"])
        protected = [p["column"] for p in roles["protected"]]
        used = [c for c in protected if c in roles.get("features", [])]
        values["demographic_inputs"] = (
            f"Of the audited characteristics ({', '.join(protected)}), used as model inputs: "
            f"{', '.join(used) if used else 'none'}, per the declared features of the training data. "
            "Other characteristics are not recorded here.",
            facts["roles_evidence"],
        )
    policy = facts.get("policy")
    if policy and roles:
        impact = policy["bounds"].get("disparate_impact") or {}
        audited = ", ".join(p["column"] for p in roles["protected"])
        values["fairness_approach"] = (
            f"Every version is audited before approval, and in production, for group fairness across {audited} "
            f"and their intersections, each figure with a 95% interval: disparate impact must stay within "
            f"{impact.get('low')} to {impact.get('high')} and the parity differences within their bounds, judged "
            f"by the {policy['ci_rule']} rule; groups under {policy['min_group_size']} people are not judged.",
            facts["policy_evidence"],
        )
    internal = facts.get("internal_run")
    if internal:
        values["validity_internal"] = (performance_summary(internal), internal["url"])
        values["fairness_internal"] = (fairness_summary(internal), internal["url"])
    local = facts.get("local_run")
    if local:
        values["validity_local"] = (performance_summary(local), local["url"])
        values["fairness_local"] = (fairness_summary(local), local["url"])
    # Every scheduled audit measures performance by group; fairness counts only where the schedule checks it.
    for key, check in (("validity_monitoring", None), ("fairness_monitoring", "fairness")):
        text = monitoring_summary(facts.get("schedules", []), check=check)
        if text:
            values[key] = (text, facts["schedules_evidence"])
    return values
