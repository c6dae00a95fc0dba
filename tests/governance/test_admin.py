"""The admin pages that call services: upload, start an audit, generate a report, tokens, lifecycle."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages

from audits.models import AuditRun
from audits.services import audit_run_execute
from governance.models import ApiToken, Dataset, GovernanceEvent, ModelVersion
from reports.models import Report
from tests.conftest import clinical_frame, csv_upload, upload_frame

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, team):
    team.owner.is_staff = team.owner.is_superuser = True
    team.owner.save()
    client.force_login(team.owner)
    return client


def _upload_form(team, **overrides):
    data = {
        "organization": team.organization.pk,
        "name": "Admin upload",
        "kind": "evaluation",
        "description": "",
        "file": csv_upload(clinical_frame(300)),
        "label": "sepsis",
        "prediction": "alert",
        "score": "score",
        "protected": "race=White, sex",
        "features": "age, lactate, ward",
        "categorical": "ward",
        "alternative_outcome": "",
    }
    return {**data, **overrides}


def test_the_upload_page_stores_a_dataset_through_the_service(staff, team, media_root) -> None:
    response = staff.post("/admin/governance/dataset/add/", _upload_form(team))
    dataset = Dataset.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/dataset/{dataset.pk}/change/")
    assert dataset.column_roles["protected"] == [
        {"column": "race", "reference": "White"},
        {"column": "sex", "reference": None},
    ]
    assert dataset.column_roles["categorical"] == ["ward"]
    assert GovernanceEvent.objects.filter(action="dataset.uploaded", actor=team.owner).exists()
    # The change page is a read-only view; a POST to it is refused.
    assert staff.get(f"/admin/governance/dataset/{dataset.pk}/change/").status_code == 200
    assert staff.post(f"/admin/governance/dataset/{dataset.pk}/change/", {"name": "renamed"}).status_code == 403


def test_the_upload_page_shows_what_is_wrong_with_a_bad_file(staff, team, media_root) -> None:
    response = staff.post("/admin/governance/dataset/add/", _upload_form(team, label="outcome"))
    assert response.status_code == 200
    assert "column &#x27;outcome&#x27; named in column_roles is not in the file" in response.content.decode()
    assert Dataset.objects.count() == 0


def test_the_start_page_queues_an_audit_and_the_run_page_shows_its_results(
    staff, team, model_version, media_root
) -> None:
    current = upload_frame(team, clinical_frame(800, seed=1), name="current")
    reference = upload_frame(team, clinical_frame(800, seed=2), name="reference", kind="reference")
    preset = staff.get(f"/admin/audits/auditrun/add/?model_version={model_version.pk}")
    assert f'<option value="{model_version.pk}" selected>' in preset.content.decode()
    response = staff.post(
        "/admin/audits/auditrun/add/",
        {
            "model_version": model_version.pk,
            "dataset": current.pk,
            "reference_dataset": reference.pk,
        },
    )
    run = AuditRun.objects.get()
    assert response.status_code == 302 and run.status == AuditRun.Status.QUEUED
    queued_page = staff.get(f"/admin/audits/auditrun/{run.pk}/change/").content.decode()
    assert 'http-equiv="refresh"' in queued_page
    audit_run_execute(run_id=run.pk, worker="w")
    page = staff.get(f"/admin/audits/auditrun/{run.pk}/change/").content.decode()
    # 800 reference rows: Evidently picks the small-sample tests.
    assert "Succeeded" in page and "White (reference)" in page and "K-S p_value" in page
    assert 'http-equiv="refresh"' not in page
    staff.post(f"/admin/audits/auditrun/{run.pk}/report/")
    report = Report.objects.get()
    assert report.audit_run == run
    assert f"/reports/{report.pk}/" in staff.get(f"/admin/audits/auditrun/{run.pk}/change/").content.decode()


def test_a_created_token_is_shown_once_and_only_its_hmac_is_kept(staff, team) -> None:
    response = staff.post(
        "/admin/governance/apitoken/add/",
        {
            "organization": team.organization.pk,
            "user": team.owner.pk,
            "name": "github-actions",
            "scope": "ci",
            "expires_in_days": 30,
        },
        follow=True,
    )
    shown = [str(m) for m in get_messages(response.wsgi_request)] or [response.content.decode()]
    plaintext = next(word for text in shown for word in text.split() if word.startswith("gov_"))
    token = ApiToken.objects.get(name="github-actions")
    assert plaintext.startswith(token.prefix) and plaintext != token.digest
    listing = staff.get("/admin/governance/apitoken/").content.decode()
    assert token.prefix in listing and plaintext not in listing


def test_the_lifecycle_actions_ask_for_confirmation_and_go_through_the_service(staff, team, model_version) -> None:
    asked = staff.post(
        "/admin/governance/modelversion/",
        {"action": "move_to_validation", "_selected_action": [model_version.pk]},
    )
    assert "Yes, move them to validation" in asked.content.decode()
    model_version.refresh_from_db()
    assert model_version.stage == ModelVersion.Stage.DRAFT
    staff.post(
        "/admin/governance/modelversion/",
        {
            "action": "move_to_validation",
            "_selected_action": [model_version.pk],
            "confirmed": "yes",
        },
    )
    model_version.refresh_from_db()
    assert model_version.stage == ModelVersion.Stage.VALIDATION
    response = staff.post(
        "/admin/governance/modelversion/",
        {
            "action": "move_to_deployed",
            "_selected_action": [model_version.pk],
            "confirmed": "yes",
        },
        follow=True,
    )
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("cannot move to deployed" in m for m in messages)
    model_version.refresh_from_db()
    assert model_version.stage == ModelVersion.Stage.VALIDATION
    events = GovernanceEvent.objects.filter(action="model_version.stage_changed")
    assert [json.dumps(e.after) for e in events] == ['{"stage": "validation"}']


def test_a_webhook_added_in_the_admin_shows_its_secret_once(staff, team) -> None:
    response = staff.post(
        "/admin/governance/webhookendpoint/add/",
        {
            "organization": team.organization.pk,
            "url": "https://hooks.example.org/governance",
            "events": ["run.finished"],
            "active": "on",
        },
        follow=True,
    )
    shown = " ".join(str(m) for m in get_messages(response.wsgi_request))
    secret = next(word for word in shown.split() if word.startswith("whsec_"))
    from governance.models import WebhookEndpoint
    from governance.webhooks import decrypt_secret

    endpoint = WebhookEndpoint.objects.get()
    assert decrypt_secret(endpoint.secret_encrypted) == secret and endpoint.events == ["run.finished"]
    assert secret not in staff.get(f"/admin/governance/webhookendpoint/{endpoint.pk}/change/").content.decode()
