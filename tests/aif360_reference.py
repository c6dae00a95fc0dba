"""aif360 computed directly on a DataFrame: the independent reference for fairness metrics."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from audits.engines.tables import group_labels

AIF360_DISPARITIES = {
    "statistical_parity_difference": "statistical_parity_difference",
    "disparate_impact": "disparate_impact",
    "equal_opportunity_difference": "equal_opportunity_difference",
    "average_odds_difference": "average_odds_difference",
    "false_positive_rate_difference": "false_positive_rate_difference",
}
AIF360_RATES = {
    "base_rate": "base_rate",
    "selection_rate": "selection_rate",
    "true_positive_rate": "true_positive_rate",
    "false_positive_rate": "false_positive_rate",
    "false_negative_rate": "false_negative_rate",
    "positive_predictive_value": "positive_predictive_value",
    "negative_predictive_value": "negative_predictive_value",
    "accuracy": "accuracy",
}


def aif360_metric(frame: pd.DataFrame, *, label: str, prediction: str, attribute: str, group: str, reference: str):
    """aif360's ClassificationMetric for one group (unprivileged) against the reference (privileged).

    An intersection such as race&sex is given to aif360 as two protected attributes, with each
    group a condition on both (aif360's own multi-attribute conditioning).
    """
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    parts = attribute.split("&")
    truth = pd.DataFrame({"label": frame[label].astype(float).to_numpy()})
    codes: dict[str, dict[str, float]] = {}
    for part in parts:
        labels = group_labels(frame[part])
        codes[part] = {name: float(i) for i, name in enumerate(sorted(labels.unique()))}
        truth[part] = labels.map(codes[part]).astype(float).to_numpy()

    def condition(name: str) -> list[dict[str, float]]:
        return [{part: codes[part][value] for part, value in zip(parts, name.split("&"), strict=True)}]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = BinaryLabelDataset(
            df=truth,
            label_names=["label"],
            protected_attribute_names=parts,
            favorable_label=1.0,
            unfavorable_label=0.0,
        )
        predicted = dataset.copy(deepcopy=True)
        predicted.labels = frame[prediction].astype(float).to_numpy().reshape(-1, 1)
        return ClassificationMetric(
            dataset, predicted, unprivileged_groups=condition(group), privileged_groups=condition(reference)
        )


# Disparities aif360 has no method for, built from aif360's own group rates with its difference().
DERIVED = {"positive_predictive_value_difference": "positive_predictive_value"}


def aif360_value(metric, name: str, **kwargs) -> float | None:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if name in DERIVED:
            value = float(metric.difference(getattr(metric, DERIVED[name])))
        else:
            value = float(getattr(metric, name)(**kwargs))
    return None if np.isnan(value) or np.isinf(value) else value


def assert_disparities_match_aif360(frame: pd.DataFrame, disparities: list[dict], *, label: str, prediction: str):
    """Every disparity of a result document equals aif360's on the same data, to 1e-9 (None where undefined)."""
    import pytest

    from audits.engines.fairness import DISPARITY_METRICS

    shared = [d for d in disparities if d["metric"] in DISPARITY_METRICS]
    assert shared, "no disparity that aif360 also defines"
    for disparity in shared:
        metric = aif360_metric(
            frame,
            label=label,
            prediction=prediction,
            attribute=disparity["attribute"],
            group=disparity["group"],
            reference=disparity["reference"],
        )
        expected = aif360_value(metric, disparity["metric"])
        if expected is None:
            assert disparity["value"] is None, disparity
        else:
            assert disparity["value"] == pytest.approx(expected, abs=1e-9), disparity
