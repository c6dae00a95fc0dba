"""Sign-offs: an approver signs a report version, bound to its hash; the signature is announced by webhook."""

from __future__ import annotations

import json

import pytest

from governance.models import GovernanceEvent, Membership, Role, WebhookDelivery
from governance.webhooks import SIGNATURE_HEADER, verify_signature, webhook_delivery_attempt, webhook_endpoint_create
from reports.models import Report, SignOff
from reports.services import report_generate_for_run
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

STATEMENT = "Reviewed by the AI committee on 2026-11-25; the disparities are accepted for pilot use."


def test_an_approver_signs_a_report_bound_to_its_hash_and_the_receiver_verifies_the_notice(
    team,
    finished_run,
    receiver,
) -> None:
    hook = receiver()
    Membership.objects.filter(user=team.owner, organization=team.organization).update(role=Role.ADMIN)
    _, secret = webhook_endpoint_create(
        organization=team.organization, url=hook.url, events=["report.signed"], actor=team.owner
    )
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    url = f"/api/v1/reports/{report.pk}/sign-offs/"
    approver = client_for(team.approver, team.organization)
    signed = approver.post(url, {"statement": STATEMENT}, format="json")
    assert signed.status_code == 201, signed.json()
    assert signed.json()["report_sha256"] == report.sha256 and signed.json()["role"] == "approver"
    assert approver.post(url, {"statement": STATEMENT}, format="json").status_code == 409
    assert [s["signed_by"] for s in approver.get(f"/api/v1/reports/{report.pk}/").json()["sign_offs"]] == ["ada"]
    assert GovernanceEvent.objects.filter(action="report.signed", actor=team.approver).exists()
    with pytest.raises(ValueError, match="final"):
        SignOff.objects.get().save()

    (delivery,) = WebhookDelivery.objects.filter(event="report.signed")
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    ((headers, body),) = hook.received
    assert verify_signature(secret, headers[SIGNATURE_HEADER], body)
    assert json.loads(body)["data"]["sha256"] == report.sha256


def test_only_approvers_sign_and_a_tampered_report_is_not_signed(team, finished_run) -> None:
    report = report_generate_for_run(run=finished_run, actor=team.owner)
    url = f"/api/v1/reports/{report.pk}/sign-offs/"
    owner = client_for(team.owner, team.organization)
    assert owner.post(url, {"statement": STATEMENT}, format="json").status_code == 403
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.post(url, {"statement": STATEMENT}, format="json").status_code == 404
    approver = client_for(team.approver, team.organization)
    short = approver.post(url, {"statement": "ok"}, format="json")
    assert short.status_code == 400 and short.json()["field"] == "statement"
    # Someone edits the stored HTML behind the service's back.
    Report.objects.filter(pk=report.pk).update(html=report.html.replace("Intended use", "Intended uses"))
    tampered = approver.post(url, {"statement": STATEMENT}, format="json")
    assert tampered.status_code == 409 and "no longer matches its sha256" in tampered.json()["detail"]
    assert not SignOff.objects.exists()
