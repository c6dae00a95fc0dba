"""Reports as PDF: the stored HTML with its charts, rendered by WeasyPrint, turned into page images by pdftoppm."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from reports.models import Report
from reports.services import report_generate_for_run, report_sign
from tests.conftest import client_for

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
        reason="pdftoppm and pdftotext (Debian's poppler-utils) are not installed",
    ),
]


def test_the_pdf_has_the_reports_pages_charts_and_sign_offs_and_hides_small_cells(
    team, finished_run, tmp_path: Path
) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    assert report.html.count("<svg") == 3  # rates, disparate impact, equal opportunity
    report_sign(report=report, actor=team.approver, statement="Reviewed by the AI committee on 2026-11-25.")
    response = client_for(team.viewer, team.organization, scope="read").get(f"/api/v1/reports/{report.pk}/pdf/")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["X-Report-SHA256"] == report.sha256
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(response.content)

    subprocess.run(["pdftoppm", "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 5, len(pages)
    for page in pages:
        with Image.open(page) as image:
            # A page with content is not one flat colour.
            assert ImageStat.Stat(image.convert("L")).stddev[0] > 5, page.name
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    for heading in (
        "Model facts",
        "Representativeness of each protected group",
        "Performance and fairness by group",
        "Drift against the reference",
        "Lifecycle of the version",
        "Methodology",
        "Sign-offs",
    ):
        assert heading in text, heading
    assert "ada" in text and report.sha256 in text.replace("\n", "")
    assert "Pacific Islander" not in report.html or "suppressed" in report.html
    last_page = subprocess.run(
        ["pdftotext", "-f", str(len(pages)), "-l", str(len(pages)), str(pdf), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Sign-offs" in last_page and "Reviewed by the AI committee" in last_page


def test_a_tampered_report_is_not_rendered(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    Report.objects.filter(pk=report.pk).update(html=report.html.replace("Model facts", "Model fact"))
    response = client_for(team.owner, team.organization).get(f"/api/v1/reports/{report.pk}/pdf/")
    assert response.status_code == 409 and "no longer matches its sha256" in response.json()["detail"]


def test_small_groups_never_reach_the_charts(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    charts = [part.split("</svg>")[0] for part in report.html.split("<svg")[1:]]
    assert charts and all("Pacific Islander" not in chart for chart in charts)
    table = report.data["representativeness"]
    assert {"attribute": "race", "group": "Pacific Islander", "suppressed": True} in table
    shown = [r for r in table if not r["suppressed"]]
    assert all(r["current_rows"] > 10 and r["reference_rows"] > 10 for r in shown)
