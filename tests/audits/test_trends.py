"""Metric time series and the change of a metric between audit windows, held to statsmodels and hand computation."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from audits.engines.trends import mover_difference, window_change
from audits.models import AuditRun, MetricResult
from audits.services import audit_run_create, audit_run_execute
from tests.conftest import client_for, clinical_frame, upload_frame


@pytest.mark.parametrize(("earlier", "later"), [((30, 100), (45, 120)), ((5, 40), (2, 60)), ((0, 25), (7, 30))])
def test_the_change_of_a_rate_between_windows_has_newcombes_interval(earlier, later) -> None:
    (x1, n1), (x2, n2) = earlier, later
    a_interval = proportion_confint(x1, n1, method="wilson")
    b_interval = proportion_confint(x2, n2, method="wilson")
    low, high = mover_difference(x1 / n1, a_interval, x2 / n2, b_interval)
    expected = confint_proportions_2indep(x2, n2, x1, n1, method="newcomb", compare="diff")
    assert (low, high) == pytest.approx(expected, abs=1e-12)


def test_a_ratio_changes_on_the_log_scale_and_is_judged_against_one() -> None:
    earlier = {"run": 1, "value": 0.9, "ci_low": 0.8, "ci_high": 1.0}
    later = {"run": 2, "value": 0.6, "ci_low": 0.5, "ci_high": 0.7}
    change = window_change("disparate_impact", earlier, later)
    assert change is not None and change.scale == "ratio"
    # By hand: log(0.6/0.9) -/+ sqrt((log .6 - log .5)^2 + (log 1 - log .9)^2), then sqrt((log .7 - log .6)^2 + ...).
    low = math.log(0.6 / 0.9) - math.hypot(math.log(0.6 / 0.5), math.log(1.0 / 0.9))
    high = math.log(0.6 / 0.9) + math.hypot(math.log(0.7 / 0.6), math.log(0.9 / 0.8))
    assert change.change == pytest.approx(2 / 3)
    assert (change.ci_low, change.ci_high) == pytest.approx((math.exp(low), math.exp(high)))
    assert change.significant is True
    unchanged = window_change("true_positive_rate", {**earlier, "run": 3}, {**earlier, "run": 4})
    assert unchanged is not None and unchanged.change == 0 and unchanged.significant is False


@pytest.mark.django_db
def test_a_metric_series_has_a_point_per_window_and_the_change_between_them(team, model_version, media_root) -> None:
    ends = [datetime(2026, 11, 8, tzinfo=UTC), datetime(2026, 11, 15, tzinfo=UTC)]
    for seed, end in zip((11, 12), ends, strict=True):
        dataset = upload_frame(team, clinical_frame(3000, seed=seed, shift=0.3 * (seed - 11)), name=f"w{seed}")
        run = audit_run_create(
            model_version=model_version,
            dataset=dataset,
            reference_dataset=None,
            actor=team.owner,
            window=(end - timedelta(days=7), end),
        )
        audit_run_execute(run_id=run.pk, worker="test")
    client = client_for(team.viewer, team.organization, scope="read")
    url = f"/api/v1/models/{model_version.ai_model_id}/series/"
    body = client.get(url, {"metric": "true_positive_rate", "attribute": "race", "group": "Black"}).json()
    (series,) = body["series"]
    runs = list(AuditRun.objects.order_by("window_end"))
    stored = [
        MetricResult.objects.get(run=run, metric="true_positive_rate", attribute="race", group="Black") for run in runs
    ]
    assert [p["run"] for p in series["points"]] == [r.pk for r in runs]
    assert [p["value"] for p in series["points"]] == [m.value for m in stored]
    assert series["points"][1]["window_end"].startswith("2026-11-15")
    (change,) = series["changes"]
    assert change["change"] == pytest.approx(stored[1].value - stored[0].value)
    expected = mover_difference(
        stored[0].value, (stored[0].ci_low, stored[0].ci_high), stored[1].value, (stored[1].ci_low, stored[1].ci_high)
    )
    assert (change["ci_low"], change["ci_high"]) == pytest.approx(expected)
    assert change["significant"] == (not expected[0] <= 0 <= expected[1])

    ratio = client.get(url, {"metric": "disparate_impact", "attribute": "race"}).json()
    assert ratio["bound"] == {"low": 0.8, "high": 1.25, "severity": "critical"}
    assert {s["group"] for s in ratio["series"]} == {"Black", "Asian", "Hispanic"}
    assert all(c["scale"] == "ratio" for s in ratio["series"] for c in s["changes"])

    missing = client.get(url)
    assert missing.status_code == 400 and "true_positive_rate" in missing.json()["metric"]
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.get(url, {"metric": "true_positive_rate"}).status_code == 404
