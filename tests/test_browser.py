"""End to end in headless Chromium against a live server, with a real Celery worker on Redis: a committee member
logs in, registers a model, uploads data, runs an audit, triages a finding, and generates and signs a report.

Screenshots of the key pages are kept in var/test-artifacts/browser/ (or $TEST_ARTIFACTS_DIR).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from audits.models import AuditRun, Finding
from reports.models import Report, SignOff
from tests.conftest import clinical_frame
from tests.factories import OrganizationFactory, UserFactory

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(
    os.environ.get("TEST_ARTIFACTS_DIR", Path(__file__).resolve().parent.parent / "var" / "test-artifacts")
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed"),
]


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.set_default_timeout(30_000)
        page.on("dialog", lambda dialog: dialog.accept())
        yield page
        browser.close()


@pytest.mark.django_db(transaction=True)
# Every click below submits a form or follows a link: each waits for the page it opens, so that the next
# step never acts on (or navigates away from) the page being left.
def test_a_committee_member_audits_a_model_triages_a_finding_and_signs_the_report(
    live_server, live_worker, browser_page, media_root, tmp_path
) -> None:
    shots = ARTIFACTS / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    page = browser_page
    organization = OrganizationFactory(slug="st-elsewhere", name="St Elsewhere")
    UserFactory(username="chair", is_staff=True, is_superuser=True)
    base = live_server.url

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=False)

    page.goto(f"{base}/admin/login/")
    page.get_by_label("Username:", exact=True).fill("chair")
    page.get_by_label("Password:", exact=True).fill("correct horse battery staple")
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()

    page.goto(f"{base}/admin/governance/aimodel/add/")
    page.get_by_label("Organization:", exact=True).select_option(label=organization.name)
    page.get_by_label("Name:", exact=True).fill("Sepsis early warning")
    page.get_by_label("Slug:", exact=True).fill("sepsis-ew")
    page.get_by_label("Intended use:", exact=True).fill("Early warning of sepsis in adult inpatients")
    with page.expect_navigation():
        page.locator("input[name=_save]").click()
    shot("01-inventory")

    page.goto(f"{base}/admin/governance/modelversion/add/")
    page.get_by_label("Ai model:", exact=True).select_option(label="Sepsis early warning")
    page.get_by_label("Version:", exact=True).fill("2.0.0")
    with page.expect_navigation():
        page.locator("input[name=_save]").click()

    data = tmp_path / "held-out.csv"
    clinical_frame(6000, seed=101).to_csv(data, index=False)
    page.goto(f"{base}/admin/governance/dataset/add/")
    page.get_by_label("Organization:", exact=True).select_option(label=organization.name)
    page.get_by_label("Name:", exact=True).fill("Held-out 2026")
    page.get_by_label("File:", exact=True).set_input_files(str(data))
    page.get_by_label("Label:", exact=True).fill("sepsis")
    page.get_by_label("Prediction:", exact=True).fill("alert")
    page.get_by_label("Score:", exact=True).fill("score")
    page.get_by_label("Protected:", exact=True).fill("race=White, sex")
    page.get_by_label("Features:", exact=True).fill("age, lactate, ward")
    with page.expect_navigation():
        page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**/dataset/*/change/")

    page.goto(f"{base}/admin/audits/auditrun/add/")
    page.get_by_label("Model version:", exact=True).select_option(index=1)
    page.get_by_label("Dataset:", exact=True).select_option(index=1)
    with page.expect_navigation():
        page.get_by_role("button", name="Start audit").click()
    page.wait_for_url("**/auditrun/*/change/")
    run = AuditRun.objects.get()
    # The status block follows the run in place (htmx polls it), and the page reloads once when it is done.
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/progress/" in request.url else None)
    status_at_first = page.locator("#run-progress [role=status]").inner_text()
    page.get_by_text("Verdict:").wait_for(timeout=180_000)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    if status_at_first in ("Queued", "Running"):
        assert polls, "the run page did not follow the run"
    shot("02-run-page")

    with page.expect_navigation():
        page.get_by_role("link", name="Triage finding").first.click()
    page.get_by_label("Action:", exact=True).select_option("acknowledge")
    shot("03-triage")
    with page.expect_navigation():
        page.get_by_role("button", name="Record the decision").click()
    page.wait_for_url("**/finding/*/change/")
    assert Finding.objects.filter(run=run, review_status="acknowledged").count() == 1

    page.goto(f"{base}/admin/audits/auditrun/{run.pk}/change/")
    with page.expect_navigation():
        page.get_by_role("button", name="Generate a report").click()
    with page.expect_navigation():
        page.get_by_role("link", name="sign").first.click()
    statement = "Reviewed by the AI committee on 2026-11-25; approved for a supervised pilot."
    page.get_by_label("Statement:", exact=True).fill(statement)
    page.get_by_label("I have read this report version and sign it as it is").check()
    shot("04-sign")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign").click()
    page.wait_for_url("**/report/*/change/")
    shot("05-signed-report")
    report = Report.objects.get()
    sign_off = SignOff.objects.get()
    assert (sign_off.report_id, sign_off.report_sha256, sign_off.signed_by.username) == (
        report.pk,
        report.sha256,
        "chair",
    )

    page.goto(f"{base}/reports/{report.pk}/")
    page.get_by_role("heading", name="Performance and fairness by group").wait_for(state="visible")
    shot("06-report")

    page.goto(f"{base}/admin/governance/aimodel/")
    with page.expect_navigation():
        page.get_by_role("link", name="Overview of Sepsis early warning").click()
    # Waits for the page the click opens (is_visible alone would look at the page being left).
    page.get_by_role("heading", name="Versions and their lifecycle").wait_for(state="visible")
    shot("07-model-page")
    assert len(list(shots.glob("*.png"))) >= 7


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.django_db(transaction=True)
def test_the_pages_work_by_keyboard_fit_a_laptop_and_print_without_the_controls(
    live_server, browser_page, team, finished_run
) -> None:
    shots = ARTIFACTS / "browser"
    shots.mkdir(parents=True, exist_ok=True)
    page, base = browser_page, live_server.url
    page.set_viewport_size({"width": 1366, "height": 768})
    ai_model = finished_run.model_version.ai_model

    # The model owner signs in and triages a finding with the keyboard alone.
    page.goto(f"{base}/admin/login/")
    page.get_by_label("Username:", exact=True).focus()
    page.keyboard.type("olivia")
    page.keyboard.press("Tab")
    page.keyboard.type("correct horse battery staple")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.goto(f"{base}/admin/audits/auditrun/{finished_run.pk}/change/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to main content"
    for _ in range(300):
        page.keyboard.press("Tab")
        label = page.evaluate("document.activeElement.getAttribute('aria-label') || ''")
        if label.startswith("Triage finding"):
            break
    else:
        pytest.fail("no triage link is reachable by keyboard")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid", "the focused link shows no outline"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.get_by_label("Action:", exact=True).focus()
    page.keyboard.press("ArrowDown")  # acknowledge -> mitigate
    page.keyboard.press("Tab")
    page.keyboard.type("Threshold lowered for this group in 1.1.0")
    page.keyboard.press("Tab")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    page.wait_for_url("**/finding/*/change/")
    assert finished_run.findings.filter(review_status="mitigated").count() == 1

    # A viewer's pages fit a laptop screen, with nothing offered that a viewer may not do.
    page.context.clear_cookies()
    page.goto(f"{base}/admin/login/")
    page.get_by_label("Username:", exact=True).fill("victor")
    page.get_by_label("Password:", exact=True).fill("correct horse battery staple")
    with page.expect_navigation():
        page.get_by_label("Password:", exact=True).press("Enter")
    pages = {
        "08-viewer-inventory": "/admin/governance/aimodel/",
        "09-viewer-model-page": f"/admin/governance/aimodel/{ai_model.pk}/overview/",
        "10-viewer-run-page": f"/admin/audits/auditrun/{finished_run.pk}/change/",
    }
    for name, url in pages.items():
        page.goto(f"{base}{url}")
        assert _fits(page), f"{url} is wider than a 1366 px screen"
        page.screenshot(path=str(shots / f"{name}.png"))
    assert page.get_by_role("button", name="Run this audit again").count() == 0
    assert page.get_by_role("link", name="Triage finding").count() == 0

    # Printed, the run page keeps its content and drops the navigation and the buttons.
    page.emulate_media(media="print")
    hidden = page.evaluate(
        "['#header', '#nav-sidebar', '.breadcrumbs a'].map(s => document.querySelector(s))"
        ".filter(e => e).map(e => getComputedStyle(e).display)"
    )
    assert hidden[:2] == ["none", "none"]
    assert page.get_by_role("heading", name="Findings").first.is_visible()
    page.pdf(path=str(shots / "11-run-page-printed.pdf"), format="A4")
    page.screenshot(path=str(shots / "11-run-page-printed.png"), full_page=True)
