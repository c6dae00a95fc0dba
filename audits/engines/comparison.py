"""Candidate against deployed model, group by group: may the new version ship? (FDA PCCP-style acceptance.)

For every group present in both results and large enough in both, each performance metric of the
candidate is compared with the deployed version's. A metric is worse beyond tolerance when it moves
in its bad direction by more than the policy's non-inferiority margin: under the `interval` rule only
when the whole 95% interval of the change lies past the margin, under the `point` rule when the
change does. Rate changes get Newcombe intervals from the two results' counts; AUROC and
calibration changes get Wald intervals from the two results' intervals.
"""

from __future__ import annotations

import math
from typing import Any

from audits.engines.policy import Policy
from audits.engines.stats import Z_95, newcombe_interval

# metric -> (numerator count, denominator count, +1 when higher is better, -1 when lower is better)
RATE_METRICS: dict[str, tuple[str, int]] = {
    "true_positive_rate": ("positives", +1),
    "false_positive_rate": ("negatives", -1),
    "false_negative_rate": ("positives", -1),
    "positive_predictive_value": ("predicted_positives", +1),
    "accuracy": ("n", +1),
}
SCORE_METRICS: dict[str, int] = {"auroc": +1}


def _denominator(group: dict[str, Any], name: str) -> int:
    if name == "negatives":
        return int(group["n"] - group["positives"])
    return int(group[name])


def _wald_from_intervals(a: float, a_ci: list[float], b: float, b_ci: list[float]) -> tuple[float, float]:
    variance = ((a_ci[1] - a_ci[0]) / (2 * Z_95)) ** 2 + ((b_ci[1] - b_ci[0]) / (2 * Z_95)) ** 2
    half = Z_95 * math.sqrt(variance)
    return a - b - half, a - b + half


def compare_with_deployed(candidate: dict[str, Any], deployed: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """Per group and metric: candidate, deployed, change with its interval, and whether it is worse."""
    margin = policy.non_inferiority_margin
    deployed_groups = {(g["attribute"], g["group"]): g for g in deployed["fairness"]["groups"]}
    rows = []
    for group in candidate["fairness"]["groups"]:
        baseline = deployed_groups.get((group["attribute"], group["group"]))
        if baseline is None:
            continue
        too_small = min(group["n"], baseline["n"]) < policy.min_group_size
        for metric, direction, interval in _changes(group, baseline):
            if group.get(metric) is None or baseline.get(metric) is None:
                continue
            change = group[metric] - baseline[metric]
            worsening = -direction * change  # positive when the candidate is worse
            if too_small:
                status = "insufficient_data"
            elif policy.ci_rule == "interval" and interval is not None:
                worst_case_low = min(-direction * interval[0], -direction * interval[1])
                status = "worse" if worst_case_low > margin else "not_worse"
            else:
                status = "worse" if worsening > margin else "not_worse"
            rows.append(
                {
                    "attribute": group["attribute"],
                    "group": group["group"],
                    "metric": metric,
                    "candidate": group[metric],
                    "deployed": baseline[metric],
                    "change": change,
                    "ci": list(interval) if interval else None,
                    "margin": margin,
                    "status": status,
                    "n": group["n"],
                    "deployed_n": baseline["n"],
                }
            )
    worse = [r for r in rows if r["status"] == "worse"]
    return {"groups": rows, "worse": len(worse), "verdict": "fail" if worse else "pass"}


def _changes(group: dict[str, Any], baseline: dict[str, Any]):
    for metric, (denominator, direction) in RATE_METRICS.items():
        if group.get(metric) is None or baseline.get(metric) is None:
            yield metric, direction, None
            continue
        trials_a, trials_b = _denominator(group, denominator), _denominator(baseline, denominator)
        successes_a = round(group[metric] * trials_a)
        successes_b = round(baseline[metric] * trials_b)
        yield metric, direction, newcombe_interval(successes_a, trials_a, successes_b, trials_b)
    for metric, direction in SCORE_METRICS.items():
        a_ci, b_ci = group.get("ci", {}).get(metric), baseline.get("ci", {}).get(metric)
        if group.get(metric) is None or baseline.get(metric) is None or not a_ci or not b_ci:
            yield metric, direction, None
            continue
        yield metric, direction, _wald_from_intervals(group[metric], a_ci, baseline[metric], b_ci)
