"""Audit policies: what counts as a breach, how sure we must be, and how serious it is. No Django here.

A policy gives each metric an accepted range and a severity. With the `interval` rule (the
default) a metric breaches only when its whole 95% interval lies outside the range, so a
small group's noisy estimate is not called a disparity; with the `point` rule the estimate
alone decides. A comparison involving a group smaller than `min_group_size` is
`insufficient_data`, never pass or fail.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from audits.engines.errors import TableError

SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class Bound:
    """The accepted range [low, high] of a metric (None: unbounded on that side) and its severity."""

    low: float | None
    high: float | None
    severity: str = "warning"

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low:g} to {self.high:g}"
        return f"at least {self.low:g}" if self.low is not None else f"at most {self.high:g}"


def _parity(limit: float, severity: str = "warning") -> Bound:
    return Bound(-limit, limit, severity)


DEFAULT_BOUNDS: dict[str, Bound] = {
    # The four-fifths rule, applied both ways.
    "disparate_impact": Bound(0.8, 1.25, "critical"),
    "statistical_parity_difference": _parity(0.1),
    "equal_opportunity_difference": _parity(0.1, "critical"),
    "average_odds_difference": _parity(0.1),
    "false_positive_rate_difference": _parity(0.1),
    "false_negative_rate_difference": _parity(0.1),
    "positive_predictive_value_difference": _parity(0.1),
    "auroc_difference": _parity(0.05),
    "calibration_in_the_large_difference": _parity(0.05),
    "calibration_slope_difference": _parity(0.2),
    # ECE has no interval, so its difference is judged on the estimate alone: informative only.
    "expected_calibration_error_difference": _parity(0.05, "info"),
    # Drift and quality.
    "share_drifted_columns": Bound(None, 0.5, "warning"),
    "prediction_drift": Bound(None, None, "warning"),
    "group_drift": Bound(None, None, "warning"),
    "missing_share": Bound(None, 0.2, "warning"),
    "duplicate_share": Bound(None, 0.01, "warning"),
    "out_of_range_share": Bound(None, 0.01, "warning"),
    "unseen_category_share": Bound(None, 0.01, "warning"),
    "differential_missingness": _parity(0.1),
    "constant_column": Bound(None, None, "warning"),
    "schema_change": Bound(None, None, "warning"),
    "direct_identifier": Bound(None, None, "critical"),
}


@dataclass(frozen=True)
class Policy:
    bounds: dict[str, Bound] = field(default_factory=lambda: dict(DEFAULT_BOUNDS))
    min_group_size: int = 30
    ci_rule: str = "interval"  # or "point"
    correction: str = "holm"  # or "benjamini-hochberg"
    # Scores at or above this count as a positive prediction when the data has no prediction column.
    operating_point: float = 0.5
    # Findings of these severities make the verdict fail.
    fail_on: tuple[str, ...] = ("critical",)
    # Intersections of protected attributes up to this many attributes (1: none).
    intersection_order: int = 2
    # How much worse than the deployed version a candidate may be for any group (absolute, per metric).
    non_inferiority_margin: float = 0.02

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        """A policy from JSON: any field may be left out, and `bounds` overrides metric by metric."""
        if not isinstance(data, dict):
            raise TableError("a policy must be a JSON object")
        known = {
            "bounds",
            "min_group_size",
            "ci_rule",
            "correction",
            "operating_point",
            "fail_on",
            "intersection_order",
            "non_inferiority_margin",
        }
        unknown = set(data) - known
        if unknown:
            raise TableError(f"unknown policy keys: {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        bounds = dict(DEFAULT_BOUNDS)
        for metric, spec in (data.get("bounds") or {}).items():
            if not isinstance(spec, dict) or not ({"low", "high", "severity"} >= set(spec)):
                raise TableError(f"policy bound of {metric!r} must be an object with low, high and severity")
            # A key left out keeps the default; an explicit null removes that side of the range.
            default = bounds.get(metric, Bound(None, None))
            severity = spec.get("severity", default.severity)
            if severity not in SEVERITIES:
                raise TableError(f"policy bound of {metric!r}: severity must be one of {', '.join(SEVERITIES)}")
            low = spec.get("low", default.low)
            high = spec.get("high", default.high)
            for side, value in (("low", low), ("high", high)):
                if value is not None and not isinstance(value, int | float):
                    raise TableError(f"policy bound of {metric!r}: {side} must be a number or null")
            bounds[metric] = Bound(low, high, severity)

        overrides: dict[str, Any] = {key: data[key] for key in known - {"bounds"} if key in data}
        if "fail_on" in overrides:
            overrides["fail_on"] = tuple(overrides["fail_on"])
        policy = replace(cls(), bounds=bounds, **overrides)
        policy.validate()
        return policy

    @classmethod
    def from_json_file(cls, path: str) -> Policy:
        try:
            with open(path, encoding="utf-8") as handle:
                return cls.from_dict(json.load(handle))
        except json.JSONDecodeError as exc:
            raise TableError(f"{path} is not valid JSON: {exc}") from None

    def validate(self) -> None:
        if self.ci_rule not in ("interval", "point"):
            raise TableError("policy ci_rule must be 'interval' or 'point'")
        if self.correction not in ("holm", "benjamini-hochberg"):
            raise TableError("policy correction must be 'holm' or 'benjamini-hochberg'")
        if not isinstance(self.min_group_size, int) or self.min_group_size < 1:
            raise TableError("policy min_group_size must be a positive integer")
        if not 0.0 <= float(self.operating_point) <= 1.0 and self.operating_point is not None:
            raise TableError("policy operating_point must lie between 0 and 1")
        if not set(self.fail_on) <= set(SEVERITIES):
            raise TableError(f"policy fail_on must list severities among {', '.join(SEVERITIES)}")
        if not isinstance(self.non_inferiority_margin, int | float) or self.non_inferiority_margin < 0:
            raise TableError("policy non_inferiority_margin must be a number of at least 0")
        if not isinstance(self.intersection_order, int) or self.intersection_order < 1:
            raise TableError("policy intersection_order must be 1 (no intersections) or more")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fail_on"] = list(self.fail_on)
        return data

    def status(self, metric: str, value: float | None, interval: tuple[float, float] | None) -> str:
        """pass or fail of one metric under this policy (insufficient_data is decided by the caller)."""
        bound = self.bounds.get(metric)
        if value is None:
            return "insufficient_data"
        if bound is None:
            return "pass"
        low = -float("inf") if bound.low is None else bound.low
        high = float("inf") if bound.high is None else bound.high
        if self.ci_rule == "interval" and interval is not None:
            breached = interval[1] < low or interval[0] > high
        else:
            breached = value < low or value > high
        return "fail" if breached else "pass"
