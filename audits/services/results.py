"""A run's result document as rows: one MetricResult per number, one Finding per breach."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from audits.models import AuditRun, Finding, MetricResult

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


def metric_rows(run: AuditRun, result: dict[str, Any]) -> list[MetricResult]:
    """The result document as one MetricResult row per number."""
    from audits.engines.fairness import GROUP_RATES, SCORE_METRICS

    rows: list[MetricResult] = []
    fairness = result["fairness"]
    for group in fairness["groups"]:
        for metric in (*GROUP_RATES, *SCORE_METRICS):
            if metric in SCORE_METRICS and group.get(metric) is None:
                continue
            interval = group["ci"].get(metric)
            rows.append(
                MetricResult(
                    run=run,
                    category=MetricResult.Category.FAIRNESS,
                    metric=metric,
                    attribute=group["attribute"],
                    group=group["group"],
                    value=group[metric],
                    ci_low=interval[0] if interval else None,
                    ci_high=interval[1] if interval else None,
                    n=group["n"],
                    details={"is_reference": group["is_reference"]},
                )
            )
    for disparity in fairness["disparities"]:
        interval = disparity["ci"]
        rows.append(
            MetricResult(
                run=run,
                category=MetricResult.Category.FAIRNESS,
                metric=disparity["metric"],
                attribute=disparity["attribute"],
                group=disparity["group"],
                reference_group=disparity["reference"],
                value=disparity["value"],
                ci_low=interval[0] if interval else None,
                ci_high=interval[1] if interval else None,
                p_value=disparity["p_value"],
                status=disparity["status"],
                n=disparity["n"],
                details={
                    "reference_n": disparity["reference_n"],
                    "p_value_unadjusted": disparity["p_value_unadjusted"],
                },
            )
        )
    drift = result.get("drift")
    if drift:
        for column in drift["columns"]:
            rows.append(
                MetricResult(
                    run=run,
                    category=MetricResult.Category.DRIFT,
                    metric="drift_score",
                    column=column["column"],
                    value=column["score"],
                    details={k: column[k] for k in ("stattest", "threshold", "drifted", "column_type")},
                )
            )
        rows.append(
            MetricResult(
                run=run,
                category=MetricResult.Category.DRIFT,
                metric="share_drifted_columns",
                value=drift["share_drifted"],
                n=len(drift["columns"]),
                details={"dataset_drift": drift["dataset_drift"], "threshold": drift["drift_share_threshold"]},
            )
        )
    quality = result["quality"]
    for column in quality["columns"]:
        rows.append(
            MetricResult(
                run=run,
                category=MetricResult.Category.QUALITY,
                metric="missing_share",
                column=column["column"],
                value=column["missing_share"],
                n=column["missing"],
            )
        )
    rows.append(
        MetricResult(
            run=run,
            category=MetricResult.Category.QUALITY,
            metric="duplicate_share",
            value=quality["duplicate_share"],
            n=quality["duplicate_rows"],
        )
    )
    return rows


def finding_rows(run: AuditRun, result: dict[str, Any]) -> list[Finding]:
    """The result's findings as Finding rows, open for review."""
    rows = []
    for finding in result.get("findings", []):
        interval, threshold = finding["ci"] or [None, None], finding["threshold"] or [None, None]
        rows.append(
            Finding(
                run=run,
                severity=finding["severity"],
                category=finding["category"],
                metric=finding["metric"],
                attribute=finding["attribute"],
                group=finding["group"],
                reference_group=finding["reference"],
                column=finding["column"],
                value=finding["value"],
                ci_low=interval[0],
                ci_high=interval[1],
                threshold_low=threshold[0],
                threshold_high=threshold[1],
                message=finding["message"],
            )
        )
    return rows
