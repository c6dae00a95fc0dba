"""Alerts: one per incident until resolved, told by e-mail and a signed webhook, whatever the number of runs."""

from __future__ import annotations

import json

import pytest
from django.core import mail
from django.core.files.storage import default_storage

from audits.models import Alert
from audits.services import audit_run_create, audit_run_execute
from audits.services.alerts import alert_notify, alert_raise
from governance.models import Membership, Role, WebhookDelivery
from governance.webhooks import SIGNATURE_HEADER, verify_signature, webhook_delivery_attempt, webhook_endpoint_create
from tests.conftest import client_for, clinical_frame, run_concurrently, upload_frame


def _run(team, model_version, dataset, reference=None):
    run = audit_run_create(model_version=model_version, dataset=dataset, reference_dataset=reference, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="test")
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_failing_runs_open_one_alert_until_a_run_succeeds(team, model_version, media_root) -> None:
    model_version.ai_model.owner = team.owner
    model_version.ai_model.save()
    current = upload_frame(team, clinical_frame(2000, seed=1), name="current")
    # Storage lost the file of this one: its runs fail.
    lost = upload_frame(team, clinical_frame(2000, seed=2), name="lost")
    default_storage.delete(lost.file.name)

    first, second = _run(team, model_version, lost), _run(team, model_version, lost)
    assert first.status == second.status == "failed"
    alert = Alert.objects.get(kind="run_failed")
    assert alert.incident_key == f"run_failed:version:{model_version.pk}"
    assert alert.occurrences == 2 and alert.details["run"] == first.pk
    assert alert.details["error"] == "the stored file of the audited dataset 'lost' is missing from storage"
    assert alert_notify(alert_ids=[alert.pk]) == 1 and len(mail.outbox) == 1

    _run(team, model_version, current)
    alert.refresh_from_db()
    assert not alert.is_open and alert.resolution.endswith("succeeded")
    _run(team, model_version, lost)
    assert Alert.objects.filter(kind="run_failed").count() == 2
    assert Alert.objects.filter(kind="run_failed", resolved_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_a_critical_finding_alerts_once_over_repeated_runs_and_is_delivered_signed(
    team, model_version, media_root, receiver
) -> None:
    hook = receiver()
    Membership.objects.filter(user=team.owner, organization=team.organization).update(role=Role.ADMIN)
    _, secret = webhook_endpoint_create(
        organization=team.organization, url=hook.url, events=["alert.opened"], actor=team.owner
    )
    dataset = upload_frame(team, clinical_frame(20_000, seed=5), name="eval")
    first = _run(team, model_version, dataset)
    critical = [f for f in first.result["findings"] if f["severity"] == "critical"]
    assert critical, "the synthetic model under-flags one group by construction"
    _run(team, model_version, dataset)

    alerts = Alert.objects.filter(kind="critical_finding")
    assert alerts.count() == len(critical)
    assert set(alerts.values_list("occurrences", flat=True)) == {2}
    assert {(a.details["metric"], a.details["group"]) for a in alerts} == {(f["metric"], f["group"]) for f in critical}
    black = alerts.get(details__metric="disparate_impact", details__attribute="race", details__group="Black")
    finding = next(
        f for f in critical if (f["metric"], f["attribute"], f["group"]) == ("disparate_impact", "race", "Black")
    )
    assert (
        black.title == f"Critical finding for {model_version}: disparate impact, race = Black: {finding['value']:.3g}"
    )
    assert black.details["message"] == finding["message"]

    deliveries = WebhookDelivery.objects.filter(event="alert.opened")
    assert deliveries.count() == len(critical)
    for delivery in deliveries:
        assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    for headers, body in hook.received:
        assert verify_signature(secret, headers[SIGNATURE_HEADER], body)
        data = json.loads(body)["data"]
        assert data["kind"] == "critical_finding" and data["occurrences"] == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_reports_of_one_incident_open_one_alert(team, model_version) -> None:
    def report() -> None:
        alert_raise(
            ai_model=model_version.ai_model,
            kind="run_failed",
            incident_key="run_failed:version:1",
            title="Audit failed",
            details={},
        )

    run_concurrently(report, 4)
    alert = Alert.objects.get()
    assert alert.occurrences == 4


@pytest.mark.django_db
def test_alerts_are_listed_and_resolved_through_the_api_by_their_organization_only(team, model_version) -> None:
    alert = alert_raise(
        ai_model=model_version.ai_model, kind="run_failed", incident_key="k", title="Audit failed", details={}
    )
    owner = client_for(team.owner, team.organization)
    listed = owner.get("/api/v1/alerts/?open=true").json()
    assert [a["id"] for a in listed["results"]] == [alert.pk]
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.get("/api/v1/alerts/").json()["results"] == []
    assert outsider.post(f"/api/v1/alerts/{alert.pk}/resolve/", {"resolution": "x"}, format="json").status_code == 404
    viewer = client_for(team.viewer, team.organization, scope="write")
    assert viewer.post(f"/api/v1/alerts/{alert.pk}/resolve/", {"resolution": "x"}, format="json").status_code == 403
    resolved = owner.post(f"/api/v1/alerts/{alert.pk}/resolve/", {"resolution": "data feed fixed"}, format="json")
    assert resolved.status_code == 200
    assert resolved.json()["resolution"] == "data feed fixed" and resolved.json()["resolved_by"] == "olivia"
    again = owner.post(f"/api/v1/alerts/{alert.pk}/resolve/", {"resolution": "again"}, format="json")
    assert again.status_code == 409


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_critical_findings_of_a_run_are_mailed_by_the_worker_in_one_message_and_a_lost_notice_by_the_sweep(
    team, model_version, media_root, live_worker
) -> None:
    import time
    from datetime import timedelta

    from django.utils import timezone

    from audits.services.alerts import alerts_sweep_unnotified

    def wait_for_mail(count: int) -> None:
        deadline = time.monotonic() + 30
        while len(mail.outbox) < count and time.monotonic() < deadline:
            time.sleep(0.2)

    model_version.ai_model.owner = team.owner
    model_version.ai_model.save()
    run = _run(team, model_version, upload_frame(team, clinical_frame(20_000, seed=5), name="eval"))
    critical = Alert.objects.filter(kind="critical_finding")
    assert critical.count() >= 2
    wait_for_mail(1)
    time.sleep(1)  # a second message, if one were sent, would arrive now
    (message,) = mail.outbox
    assert message.subject == f"[st-elsewhere] {critical.count()} new alerts for {model_version.ai_model.name}"
    assert message.to == ["olivia@example.org"]
    assert all(alert.title in message.body for alert in critical) and f"Run: {run.pk}" in message.body

    # Opened while the broker was down: nobody was told yet.
    lost = Alert.objects.create(
        organization=team.organization,
        ai_model=model_version.ai_model,
        kind="run_failed",
        incident_key="lost",
        title="Another audit failed",
        last_seen_at=timezone.now(),
    )
    Alert.objects.filter(pk=lost.pk).update(opened_at=timezone.now() - timedelta(minutes=5))
    # And one whose sender was killed while sending, eleven minutes ago.
    stuck = Alert.objects.create(
        organization=team.organization,
        ai_model=model_version.ai_model,
        kind="run_failed",
        incident_key="stuck",
        title="A third audit failed",
        last_seen_at=timezone.now(),
        notified={"sending_since": (timezone.now() - timedelta(minutes=11)).isoformat()},
    )
    Alert.objects.filter(pk=stuck.pk).update(opened_at=timezone.now() - timedelta(minutes=12))
    assert alerts_sweep_unnotified() == 2
    wait_for_mail(2)
    assert mail.outbox[1].subject == f"[st-elsewhere] 2 new alerts for {model_version.ai_model.name}"
    assert "Another audit failed" in mail.outbox[1].body and "A third audit failed" in mail.outbox[1].body
    assert all(a.notified["emails"] == ["olivia@example.org"] for a in Alert.objects.all())
    assert alerts_sweep_unnotified() == 0
