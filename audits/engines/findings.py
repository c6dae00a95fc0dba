"""Findings: the parts of a result that breach the policy, in words a committee can act on."""

from __future__ import annotations

from typing import Any

from audits.engines.policy import Policy

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def _finding(
    policy: Policy,
    *,
    severity: str | None = None,
    category: str,
    metric: str,
    message: str,
    value: float | None,
    ci: list[float] | None = None,
    attribute: str = "",
    group: str = "",
    reference: str = "",
    column: str = "",
) -> dict[str, Any]:
    bound = policy.bounds.get(metric)
    return {
        "severity": severity or (bound.severity if bound else "warning"),
        "category": category,
        "metric": metric,
        "attribute": attribute,
        "group": group,
        "reference": reference,
        "column": column,
        "value": value,
        "ci": ci,
        "threshold": [bound.low, bound.high] if bound else None,
        "message": message,
    }


def fairness_findings(fairness: dict[str, Any], policy: Policy) -> list[dict[str, Any]]:
    """A finding per failed disparity, and one info finding per group too small to judge."""
    findings = []
    too_small: dict[tuple[str, str], int] = {}
    for d in fairness["disparities"]:
        if d["status"] == "fail":
            bound = policy.bounds[d["metric"]]
            interval = f" (95% CI {_fmt(d['ci'][0])} to {_fmt(d['ci'][1])})" if d["ci"] else ""
            findings.append(
                _finding(
                    policy,
                    category="fairness",
                    metric=d["metric"],
                    value=d["value"],
                    ci=d["ci"],
                    attribute=d["attribute"],
                    group=d["group"],
                    reference=d["reference"],
                    message=f"{d['attribute']} = {d['group']}: {d['metric'].replace('_', ' ')} against "
                    f"{d['reference']} is {_fmt(d['value'])}{interval}, outside the accepted range {bound.describe()}.",
                )
            )
        elif d["status"] == "insufficient_data" and min(d["n"], d["reference_n"]) < fairness["min_group_size"]:
            too_small[(d["attribute"], d["group"])] = d["n"]
    for (attribute, group), n in too_small.items():
        findings.append(
            _finding(
                policy,
                severity="info",
                category="fairness",
                metric="min_group_size",
                value=float(n),
                attribute=attribute,
                group=group,
                message=f"{attribute} = {group} has {n} people, fewer than the minimum of "
                f"{fairness['min_group_size']}; its disparities are reported but not judged.",
            )
        )
    return findings


def label_choice_findings(label_choice: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A warning for every group whose need, at equal score, differs from the reference's beyond chance."""
    if not label_choice:
        return []
    findings = []
    outcome = label_choice["alternative_outcome"]
    for gap in label_choice["gaps"]:
        if gap["status"] != "fail":
            continue
        direction = "more" if gap["gap"] > 0 else "less"
        findings.append(
            {
                "severity": "warning",
                "category": "label_choice",
                "metric": "label_choice_gap",
                "attribute": gap["attribute"],
                "group": gap["group"],
                "reference": gap["reference"],
                "column": outcome,
                "value": gap["gap"],
                "ci": gap["ci"],
                "threshold": [0.0, 0.0],
                "message": f"At equal score, {gap['attribute']} = {gap['group']} has {abs(gap['gap']):.3f} {direction} "
                f"{outcome!r} than {gap['reference']} (95% CI {gap['ci'][0]:.3f} to {gap['ci'][1]:.3f}): the score may "
                "understate this group's need (label-choice bias).",
            }
        )
    return findings


def drift_findings(drift: dict[str, Any] | None, roles: dict[str, Any], policy: Policy) -> list[dict[str, Any]]:
    if not drift:
        return []
    findings = []
    if policy.status("share_drifted_columns", drift["share_drifted"], None) == "fail" or drift["dataset_drift"]:
        findings.append(
            _finding(
                policy,
                category="drift",
                metric="share_drifted_columns",
                value=drift["share_drifted"],
                message=f"{drift['share_drifted']:.0%} of the columns drifted from the reference: the population or "
                "the data pipeline has changed.",
            )
        )
    model_outputs = {roles.get("prediction"), roles.get("score")} - {None}
    drifted_overall = {c["column"] for c in drift["columns"] if c["drifted"]}
    for group in drift.get("by_group", []):
        for column in group["columns"]:
            if column["drifted"] and column["column"] not in drifted_overall:
                findings.append(
                    _finding(
                        policy,
                        category="drift",
                        metric="group_drift",
                        value=column["score"],
                        attribute=group["attribute"],
                        group=group["group"],
                        column=column["column"],
                        message=f"{column['column']!r} drifted within {group['attribute']} = {group['group']} "
                        f"({column['stattest']} {column['score']:.4f}, threshold {column['threshold']:g}) although "
                        "not in the whole population: a shift in one group hidden by the others.",
                    )
                )
    for column in drift["columns"]:
        if column["drifted"] and column["column"] in model_outputs:
            findings.append(
                _finding(
                    policy,
                    category="drift",
                    metric="prediction_drift",
                    value=column["score"],
                    column=column["column"],
                    message=f"The model's output {column['column']!r} drifted from the reference "
                    f"({column['stattest']} {column['score']:.4f}, threshold {column['threshold']:g}).",
                )
            )
    return findings


def quality_findings(quality: dict[str, Any], policy: Policy) -> list[dict[str, Any]]:
    findings = [
        _finding(
            policy,
            severity=hit["severity"],
            category="quality",
            metric="direct_identifier",
            value=hit["share"],
            column=hit["column"],
            message=f"Column {hit['column']!r} looks like a direct identifier ({hit['kind'].replace('_', ' ')}, "
            f"by its {hit['evidence']}); HIPAA Safe Harbor de-identification removes it. Remove the column, or "
            "confirm that this data may hold it.",
        )
        for hit in quality.get("identifiers", [])
    ]
    schema = quality.get("schema") or {}
    changes = [f"missing {c!r}" for c in schema.get("missing_columns", [])]
    changes += [f"new {c!r}" for c in schema.get("new_columns", [])]
    changes += [f"{t['column']!r} {t['reference']} -> {t['current']}" for t in schema.get("type_changes", [])]
    if changes:
        findings.append(
            _finding(
                policy,
                category="quality",
                metric="schema_change",
                value=float(len(changes)),
                message="The schema differs from the reference: " + "; ".join(changes) + ".",
            )
        )
    for column in quality["columns"]:
        name = column["column"]
        if column.get("constant"):
            findings.append(
                _finding(
                    policy,
                    category="quality",
                    metric="constant_column",
                    value=None,
                    column=name,
                    message=f"{name!r} holds a single value: it carries no information and may be a broken feed.",
                )
            )
        if (
            column.get("out_of_range_share") is not None
            and policy.status("out_of_range_share", column["out_of_range_share"], None) == "fail"
        ):
            findings.append(
                _finding(
                    policy,
                    category="quality",
                    metric="out_of_range_share",
                    value=column["out_of_range_share"],
                    column=name,
                    message=f"{column['out_of_range']} values of {name!r} "
                    f"({column['out_of_range_share']:.1%}) lie outside the reference's range.",
                )
            )
        if (
            column.get("unseen_share") is not None
            and policy.status("unseen_category_share", column["unseen_share"], None) == "fail"
        ):
            findings.append(
                _finding(
                    policy,
                    category="quality",
                    metric="unseen_category_share",
                    value=column["unseen_share"],
                    column=name,
                    message=f"{column['unseen_rows']} rows ({column['unseen_share']:.1%}) of {name!r} hold "
                    f"{column['unseen_categories']} categories the reference never had.",
                )
            )
    for row in quality.get("differential_missingness", []):
        if min(row["n"], row["reference_n"]) < policy.min_group_size or row["difference"] is None:
            continue
        interval = (row["ci"][0], row["ci"][1]) if row["ci"] else None
        if policy.status("differential_missingness", row["difference"], interval) == "fail":
            findings.append(
                _finding(
                    policy,
                    category="quality",
                    metric="differential_missingness",
                    value=row["difference"],
                    ci=row["ci"],
                    attribute=row["attribute"],
                    group=row["group"],
                    reference=row["reference"],
                    column=row["column"],
                    message=f"{row['column']!r} is missing for {row['missing_share']:.1%} of {row['attribute']} = "
                    f"{row['group']} against {row['reference_missing_share']:.1%} of {row['reference']}: missingness "
                    "that differs by group can bias the model and the audit.",
                )
            )

    for column in quality["columns"]:
        if policy.status("missing_share", column["missing_share"], None) == "fail":
            findings.append(
                _finding(
                    policy,
                    category="quality",
                    metric="missing_share",
                    value=column["missing_share"],
                    column=column["column"],
                    message=f"{column['missing_share']:.1%} of {column['column']!r} is missing.",
                )
            )
    if policy.status("duplicate_share", quality["duplicate_share"], None) == "fail":
        findings.append(
            _finding(
                policy,
                category="quality",
                metric="duplicate_share",
                value=quality["duplicate_share"],
                message=f"{quality['duplicate_rows']} rows ({quality['duplicate_share']:.1%}) "
                "repeat another row exactly.",
            )
        )
    return findings


def verdict(findings: list[dict[str, Any]], policy: Policy) -> str:
    """fail when any finding has a severity the policy fails on, else pass."""
    return "fail" if any(f["severity"] in policy.fail_on for f in findings) else "pass"


def sort_findings(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f["severity"]], f["category"], f["attribute"], f["group"]))


# The finding categories each check of a schedule covers.
CHECK_CATEGORIES = {"fairness": {"fairness", "label_choice"}, "drift": {"drift"}, "quality": {"quality"}}


def restrict_to_checks(result: dict[str, Any], checks: list[str]) -> dict[str, Any]:
    """Keep the findings of the chosen checks (all when none are chosen) and judge the verdict on them.

    A direct identifier in the data is kept whatever the checks: it is a privacy breach, not a metric.
    The figures themselves are all kept; only what counts in the verdict and alerts changes.
    """
    if not checks:
        return result
    categories = set().union(*(CHECK_CATEGORIES[c] for c in checks))
    kept = [f for f in result["findings"] if f["category"] in categories or f["metric"] == "direct_identifier"]
    return {
        **result,
        "checks": sorted(checks),
        "findings": kept,
        "findings_outside_checks": len(result["findings"]) - len(kept),
        "verdict": verdict(kept, Policy.from_dict(result["policy"])),
    }
