"""Small-cell suppression under attack: try to work hidden counts back from everything a report publishes."""

from __future__ import annotations

import pytest

from audits.models import AuditRun
from audits.services import audit_run_create, audit_run_execute
from reports.services import report_generate_for_run
from tests.conftest import clinical_frame, upload_frame

pytestmark = pytest.mark.django_db
THRESHOLD = 10


def attacker_counts(group: dict) -> dict[str, int]:
    """What someone holding the published report can compute for a group: written here, apart from the service."""
    n = group["n"]
    found: dict[str, int] = {}
    if group.get("base_rate") is not None:
        positives = round(group["base_rate"] * n)
        found["positives"], found["negatives"] = positives, n - positives
        if group.get("true_positive_rate") is not None:
            found["true_positives"] = round(group["true_positive_rate"] * positives)
            found["false_negatives"] = positives - found["true_positives"]
        if group.get("false_positive_rate") is not None:
            found["false_positives"] = round(group["false_positive_rate"] * (n - positives))
            found["true_negatives"] = n - positives - found["false_positives"]
    if group.get("selection_rate") is not None:
        flagged = round(group["selection_rate"] * n)
        found["flagged"], found["not_flagged"] = flagged, n - flagged
    if group.get("accuracy") is not None:
        found["correct"] = round(group["accuracy"] * n)
        found["incorrect"] = n - found["correct"]
    return found


@pytest.fixture
def report_with_a_rare_outcome(team, model_version, media_root):
    frame = clinical_frame(4000, seed=61)
    # 150 patients of one group, only 4 of whom had the outcome: a count of 4 hidden inside a group of 150.
    rare = frame.index[:150]
    frame.loc[rare, "race"] = "Pacific Islander"
    frame.loc[rare, "sepsis"] = 0
    frame.loc[rare[:4], "sepsis"] = 1
    dataset = upload_frame(team, frame, name="rare")
    run = audit_run_create(model_version=model_version, dataset=dataset, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="test")
    run.refresh_from_db()
    assert run.status == AuditRun.Status.SUCCEEDED, run.error
    return run, report_generate_for_run(run=run, actor=team.owner)


def test_no_published_rate_gives_away_a_count_of_1_to_10(report_with_a_rare_outcome) -> None:
    run, report = report_with_a_rare_outcome
    groups = report.data["result"]["fairness"]["groups"]
    for group in groups:
        if group["suppressed"] or group.get("cells_suppressed"):
            continue
        small = {k: v for k, v in attacker_counts(group).items() if 1 <= v <= THRESHOLD}
        assert not small, (group["attribute"], group["group"], small)
    rare = next(g for g in groups if (g["attribute"], g["group"]) == ("race", "Pacific Islander"))
    assert rare["cells_suppressed"] and rare["n"] == 150 and rare["base_rate"] is None
    # The raw run still holds the figures: only what is published is cut.
    raw = next(g for g in run.result["fairness"]["groups"] if g["group"] == "Pacific Islander")
    assert raw["base_rate"] == pytest.approx(4 / 150)


def test_a_lone_hidden_group_is_never_alone_in_its_attribute(report_with_a_rare_outcome) -> None:
    _, report = report_with_a_rare_outcome
    fairness = report.data["result"]["fairness"]
    by_attribute: dict[str, list[dict]] = {}
    for group in fairness["groups"]:
        by_attribute.setdefault(group["attribute"], []).append(group)
    for attribute, groups in by_attribute.items():
        hidden = [g for g in groups if g["suppressed"] or g.get("cells_suppressed")]
        assert len(hidden) != 1, (attribute, [g["group"] for g in hidden])
    # Every disparity that still shows a value compares two groups whose rates are published.
    published = {(g["attribute"], g["group"]) for g in fairness["groups"] if g["base_rate"] is not None}
    for disparity in fairness["disparities"]:
        if disparity["value"] is not None:
            assert (disparity["attribute"], disparity["group"]) in published
            assert (disparity["attribute"], disparity["reference"]) in published


def test_the_findings_and_the_page_do_not_quote_the_hidden_group(report_with_a_rare_outcome) -> None:
    _, report = report_with_a_rare_outcome
    assert all(f["group"] != "Pacific Islander" for f in report.data["result"]["findings"])
    row = report.html.split("Pacific Islander", 1)[1].split("</tr>", 1)[0]
    assert "rates suppressed" in row and "0.027" not in row
