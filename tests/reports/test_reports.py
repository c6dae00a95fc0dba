"""Reports: frozen, hashed, verifiable, and with small cells suppressed."""

from __future__ import annotations

import pytest

from reports.models import Report
from reports.services import report_generate_for_run, suppress_small_cells
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_a_report_is_frozen_with_the_hash_of_its_content_and_verifies(team, finished_run) -> None:
    client = client_for(team.owner, team.organization)
    response = client.post(f"/api/v1/audits/{finished_run.pk}/reports/")
    assert response.status_code == 201, response.json()
    report_id = response.json()["id"]
    verify = client.get(f"/api/v1/reports/{report_id}/verify/").json()
    assert verify["intact"] is True
    assert verify["stored_sha256"] == response.json()["sha256"]
    report = Report.objects.get(pk=report_id)
    assert "Sepsis model" in report.html and "Intended use" in report.html
    with pytest.raises(ValueError, match="frozen"):
        report.save()
    # Regenerating makes a new version; the first is untouched.
    second = client.post(f"/api/v1/audits/{finished_run.pk}/reports/").json()
    assert second["version"] == 2
    assert Report.objects.get(pk=report_id).sha256 == verify["stored_sha256"]


def test_verification_fails_after_the_stored_report_is_tampered_with(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    Report.objects.filter(pk=report.pk).update(html=report.html.replace("Sepsis", "Sepsls"))
    client = client_for(team.owner, team.organization)
    verify = client.get(f"/api/v1/reports/{report.pk}/verify/").json()
    assert verify["intact"] is False
    assert verify["computed_sha256"] != verify["stored_sha256"]


def test_a_group_of_one_to_ten_people_is_suppressed_with_its_disparities(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    groups = {g["group"]: g for g in report.data["result"]["fairness"]["groups"] if g["attribute"] == "race"}
    small = groups["Pacific Islander"]
    assert small["suppressed"] is True
    assert small["n"] is None and small["selection_rate"] is None
    assert groups["White"]["suppressed"] is False and groups["White"]["n"] > 10
    hidden = [d for d in report.data["result"]["fairness"]["disparities"] if d["group"] == "Pacific Islander"]
    assert hidden and all(d["value"] is None for d in hidden)
    # The next smallest race group is hidden with it, so the total cannot reveal the eight.
    race = sorted(
        (g for g in finished_run.result["fairness"]["groups"] if g["attribute"] == "race"), key=lambda g: g["n"]
    )
    assert groups[race[1]["group"]]["suppressed"] is True
    assert not [f for f in report.data["result"]["findings"] if f["group"] == "Pacific Islander"]
    assert "Pacific Islander has" not in report.html
    race_groups = [g for g in report.data["result"]["fairness"]["groups"] if g["attribute"] == "race"]
    assert sum(g["suppressed"] for g in race_groups) == 2
    assert "suppressed (small cell)" in report.html
    # The run keeps the raw figures; only the published report hides them.
    raw = next(g for g in finished_run.result["fairness"]["groups"] if g["group"] == "Pacific Islander")
    assert raw["n"] == 8


def _groups(*sizes: tuple[str, int, bool]) -> dict:
    reference = next(g for g, _, is_reference in sizes if is_reference)
    return {
        "result": {
            "fairness": {
                "groups": [
                    {"attribute": "a", "group": g, "n": n, "selection_rate": 0.5, "is_reference": is_reference}
                    for g, n, is_reference in sizes
                ],
                "disparities": [
                    {"attribute": "a", "group": g, "reference": reference, "metric": "m", "value": 1.0}
                    for g, _, is_reference in sizes
                    if not is_reference
                ],
            }
        }
    }


def test_suppression_keeps_eleven_and_zero_visible_and_hides_one_to_ten() -> None:
    published = suppress_small_cells(
        _groups(("ref", 500, True), ("x", 11, False), ("y", 10, False), ("z", 0, False), ("w", 1, False)),
        threshold=10,
    )
    groups = {g["group"]: g["n"] for g in published["result"]["fairness"]["groups"]}
    assert groups == {"ref": 500, "x": 11, "y": None, "z": 0, "w": None}


def test_a_lone_suppressed_group_takes_the_next_smallest_with_it_so_the_total_cannot_reveal_it() -> None:
    published = suppress_small_cells(
        _groups(("ref", 500, True), ("big", 300, False), ("mid", 40, False), ("tiny", 2, False)), threshold=10
    )
    visible = {g["group"]: g["n"] for g in published["result"]["fairness"]["groups"]}
    assert visible == {"ref": 500, "big": 300, "mid": None, "tiny": None}
    # Whoever knows the total (842) can no longer subtract their way to 'tiny'.
    assert published["suppression"] == {
        "threshold": 10,
        "suppressed_groups": 2,
        "complementary": 1,
        "groups_with_small_cells": 0,
    }
    hidden = {d["group"] for d in published["result"]["fairness"]["disparities"] if d["value"] is None}
    assert hidden == {"mid", "tiny"}


def test_a_disparity_against_a_suppressed_reference_group_is_hidden() -> None:
    published = suppress_small_cells(_groups(("ref", 9, True), ("x", 50, False), ("y", 60, False)), threshold=10)
    assert all(d["value"] is None for d in published["result"]["fairness"]["disparities"])


def test_label_choice_drift_within_groups_and_quality_counts_are_suppressed_too() -> None:
    data = {
        "result": {
            "fairness": {"groups": [], "disparities": []},
            "label_choice": {
                "groups": [{"attribute": "a", "group": "x", "bins": [{"n": 3, "mean": 2.0}]}],
                "gaps": [
                    {"group": "x", "n": 9, "reference_n": 500, "gap": 0.4, "ci": [0.1, 0.7], "p_value": 0.01},
                    {"group": "y", "n": 80, "reference_n": 500, "gap": 0.1, "ci": [-0.1, 0.3], "p_value": 0.3},
                ],
            },
            "drift": {
                "by_group": [
                    {
                        "group": "x",
                        "reference_rows": 7,
                        "current_rows": 40,
                        "columns": [{"score": 1}],
                        "status": "assessed",
                    }
                ]
            },
            "quality": {
                "columns": [
                    {"column": "hba1c", "missing": 4, "missing_share": 0.008},
                    {"column": "age", "missing": 0, "missing_share": 0.0},
                ],
                "duplicate_rows": 2,
                "duplicate_share": 0.004,
                "differential_missingness": [
                    {
                        "n": 100,
                        "reference_n": 400,
                        "missing_share": 0.05,
                        "reference_missing_share": 0.2,
                        "difference": -0.15,
                        "ci": [-0.2, -0.1],
                        "p_value": 0.001,
                    }
                ],
            },
            "findings": [],
        }
    }
    published = suppress_small_cells(data, threshold=10)["result"]
    assert published["label_choice"]["groups"] == []
    gaps = {g["group"]: g for g in published["label_choice"]["gaps"]}
    assert gaps["x"]["gap"] is None and gaps["y"]["gap"] == 0.1
    assert published["drift"]["by_group"][0]["status"] == "suppressed"
    columns = {c["column"]: c for c in published["quality"]["columns"]}
    assert columns["hba1c"]["missing"] is None and columns["age"]["missing"] == 0
    assert published["quality"]["duplicate_rows"] is None
    # 5% of 100 is 5 people: the row would reveal a small count.
    assert published["quality"]["differential_missingness"][0]["missing_share"] is None


def test_an_outsider_cannot_read_or_verify_a_report(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.get(f"/api/v1/reports/{report.pk}/").status_code == 404
    assert outsider.get(f"/api/v1/reports/{report.pk}/verify/").status_code == 404
    assert outsider.post(f"/api/v1/audits/{finished_run.pk}/reports/").status_code == 404


def test_the_report_page_serves_the_stored_html_to_members_only(client, team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    assert client.get(f"/reports/{report.pk}/").status_code == 302  # to the login page
    client.force_login(team.viewer)
    response = client.get(f"/reports/{report.pk}/")
    assert response.status_code == 200
    assert response.content.decode() == report.html
    assert response["X-Report-SHA256"] == report.sha256
    client.force_login(team.outsider)
    assert client.get(f"/reports/{report.pk}/").status_code == 404
