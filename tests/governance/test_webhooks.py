"""Webhooks: a receiver on loopback gets signed, timestamped deliveries; failures are retried and logged."""

from __future__ import annotations

import json
import time

import pytest

from audits.services import audit_run_create, audit_run_execute
from governance.models import WebhookDelivery
from governance.webhooks import (
    SIGNATURE_HEADER,
    backoff_seconds,
    decrypt_secret,
    sign,
    verify_signature,
    webhook_delivery_attempt,
    webhook_endpoint_create,
)
from tests.conftest import clinical_frame, upload_frame

pytestmark = pytest.mark.django_db


def test_a_finished_run_is_delivered_signed_and_the_receiver_can_verify_it(team, model_version, media_root, receiver):
    hook = receiver()
    endpoint, secret = webhook_endpoint_create(
        organization=team.organization, url=hook.url, events=[], actor=_admin(team)
    )
    assert secret.startswith("whsec_") and secret not in endpoint.secret_encrypted
    assert decrypt_secret(endpoint.secret_encrypted) == secret
    dataset = upload_frame(team, clinical_frame(20_000, seed=5), name="eval")
    run = audit_run_create(model_version=model_version, dataset=dataset, reference_dataset=None, actor=team.owner)
    audit_run_execute(run_id=run.pk, worker="w")
    # Tests run inside a transaction, so on_commit does not fire: deliver directly, as the task does.
    for delivery in WebhookDelivery.objects.filter(endpoint=endpoint):
        assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    events = {}
    for headers, body in hook.received:
        assert verify_signature(secret, headers[SIGNATURE_HEADER], body)
        assert not verify_signature("whsec_wrong", headers[SIGNATURE_HEADER], body)
        events[headers["X-Governance-Event"]] = json.loads(body)
    # A critical finding also opens an alert, announced as alert.opened.
    assert set(events) == {"run.finished", "finding.critical", "alert.opened"}
    assert events["run.finished"]["data"]["verdict"] == "fail"
    assert events["finding.critical"]["data"]["critical"][0]["metric"] == "disparate_impact"
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_a_failing_receiver_is_retried_with_backoff_and_every_attempt_is_logged(team, receiver) -> None:
    hook = receiver([500, 503])
    endpoint, _ = webhook_endpoint_create(
        organization=team.organization, url=hook.url, events=["run.finished"], actor=_admin(team)
    )
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event="run.finished", payload={"run": 1})
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == backoff_seconds(1) == 30
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == backoff_seconds(2) == 60
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_response_code) == ("delivered", 3, 200)
    assert [a.response_code for a in delivery.attempt_log.all()] == [500, 503, 200]


def test_an_unreachable_receiver_is_given_up_after_the_last_attempt(team, monkeypatch) -> None:
    import governance.webhooks as webhooks

    monkeypatch.setattr(webhooks, "MAX_ATTEMPTS", 2)
    endpoint, _ = webhook_endpoint_create(
        organization=team.organization, url="http://127.0.0.1:9/unreachable", events=[], actor=_admin(team)
    )
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event="run.finished", payload={})
    assert webhook_delivery_attempt(delivery_id=delivery.pk) == 30
    assert webhook_delivery_attempt(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.state == "failed"
    assert "URLError" in delivery.attempt_log.last().error


def test_an_old_or_tampered_signature_is_refused() -> None:
    body = b'{"event":"run.finished"}'
    assert verify_signature("s", sign("s", body), body)
    assert not verify_signature("s", sign("s", body, timestamp=int(time.time()) - 3600), body)
    assert not verify_signature("s", sign("s", body), body + b" ")
    assert not verify_signature("s", "garbage", body)


def _admin(team):
    from governance.models import Membership, Role

    Membership.objects.filter(user=team.owner, organization=team.organization).update(role=Role.ADMIN)
    return team.owner


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_delivery_whose_dispatch_was_lost_is_sent_by_the_sweep(team, receiver, live_worker) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from governance.webhooks import webhook_deliveries_sweep

    hook = receiver()
    endpoint, secret = webhook_endpoint_create(
        organization=team.organization, url=hook.url, events=[], actor=_admin(team)
    )
    # Created while the broker was down: the row exists, its message never did.
    lost = WebhookDelivery.objects.create(endpoint=endpoint, event="run.finished", payload={"run": 7})
    WebhookDelivery.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    recent = WebhookDelivery.objects.create(endpoint=endpoint, event="run.finished", payload={"run": 8})

    assert webhook_deliveries_sweep() == 1
    deadline = time.monotonic() + 30
    while WebhookDelivery.objects.get(pk=lost.pk).state == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert WebhookDelivery.objects.get(pk=lost.pk).state == "delivered"
    assert WebhookDelivery.objects.get(pk=recent.pk).state == "pending"
    ((headers, body),) = hook.received
    assert verify_signature(secret, headers[SIGNATURE_HEADER], body) and json.loads(body)["data"] == {"run": 7}
