"""Outgoing webhooks: signed, timestamped JSON deliveries, retried with backoff, every attempt logged.

Signature: header `X-Governance-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`, computed over
`f"{t}.{body}"` with the endpoint's secret. A receiver recomputes it, compares in constant time,
and refuses a timestamp older than a few minutes (replay). `verify_signature` does exactly that.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Governance-Signature"

EVENT_HEADER = "X-Governance-Event"
DELIVERY_HEADER = "X-Governance-Delivery"
MAX_ATTEMPTS = 8
# 30 s, 1 min, 2 min, ... about 1 h in all before giving up.
BACKOFF_BASE_SECONDS = 30


def _fernet() -> Any:
    from cryptography.fernet import Fernet

    key = hashlib.sha256(("webhook-secrets:" + settings.SECRET_KEY).encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance_seconds: int = 300) -> bool:
    """True when the header signs this body with this secret, within the tolerance of now."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def encode_payload(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def backoff_seconds(attempt: int) -> int:
    """Seconds to wait after the given failed attempt (1-based)."""
    return int(BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))


# --- Services -----------------------------------------------------------------------------------


def webhook_endpoint_create(*, organization: Any, url: str, events: list[str], actor: Any) -> tuple[Any, str]:
    """Add an endpoint; returns it with its signing secret, which is shown this once."""
    from governance.models import Role, WebhookEndpoint
    from governance.services import ServiceError, event_record, require_role

    require_role(actor, organization, {Role.ADMIN}, doing="Adding a webhook")
    unknown = set(events) - set(WebhookEndpoint.Event.values)
    if unknown:
        raise ServiceError(f"unknown events: {', '.join(sorted(unknown))}", field="events")
    if not url.startswith(("https://", "http://")):
        raise ServiceError("the webhook URL must be http or https", field="url")
    secret = new_secret()
    endpoint = WebhookEndpoint.objects.create(
        organization=organization, url=url, events=events, secret_encrypted=encrypt_secret(secret)
    )
    event_record(
        organization=organization,
        actor=actor,
        action="webhook.created",
        obj=endpoint,
        after={"url": url, "events": events},
    )
    return endpoint, secret


def webhook_event_emit(*, organization: Any, event: str, payload: dict[str, Any]) -> int:
    """Queue a delivery of the event to every endpoint of the organization that wants it; sent on commit."""
    from django.db import transaction

    from governance.models import WebhookDelivery, WebhookEndpoint

    count = 0
    for endpoint in WebhookEndpoint.objects.filter(organization=organization, active=True):
        if not endpoint.wants(event):
            continue
        delivery = WebhookDelivery.objects.create(endpoint=endpoint, event=event, payload=payload)
        transaction.on_commit(functools.partial(webhook_delivery_dispatch, delivery.pk, countdown=0))
        count += 1
    return count


def webhook_delivery_dispatch(delivery_id: int, *, countdown: int) -> None:
    """Send a delivery to the workers, now or after countdown seconds."""

    from kombu.exceptions import OperationalError

    from governance.tasks import deliver_webhook

    try:
        deliver_webhook.apply_async((delivery_id,), countdown=countdown)
    except OperationalError:
        # The delivery stays pending in the database; webhook_deliveries_sweep sends it again.
        logger.warning("webhook delivery %s: broker unavailable, left pending", delivery_id)


# How long past its expected next try a pending delivery waits before the sweep takes it as lost.
REDISPATCH_GRACE_SECONDS = 300


def webhook_deliveries_sweep() -> int:
    """Send again the pending deliveries whose next try is overdue (their dispatch was lost with the broker).

    A delivery's next try is due `backoff_seconds(attempts)` after its last attempt (at once after its
    creation); one still pending REDISPATCH_GRACE_SECONDS after that is dispatched again. Receivers see the
    same X-Governance-Delivery id on a repeat and can drop it.
    """
    from datetime import timedelta

    from django.db.models import Max
    from django.utils import timezone

    from governance.models import WebhookDelivery

    now = timezone.now()
    count = 0
    pending = WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING).annotate(
        last_attempt=Max("attempt_log__attempted_at")
    )
    for delivery in pending:
        wait = backoff_seconds(delivery.attempts) if delivery.attempts else 0
        since = delivery.last_attempt or delivery.created_at
        if since + timedelta(seconds=wait + REDISPATCH_GRACE_SECONDS) < now:
            webhook_delivery_dispatch(delivery.pk, countdown=0)
            count += 1
    return count


def webhook_delivery_attempt(*, delivery_id: int) -> int | None:
    """Try one delivery; returns the seconds to wait before the next try, or None when it is settled.

    1. POST the signed JSON with the event, delivery id and signature headers (10 s timeout).
    2. Log the attempt with its response code or error and duration.
    3. A 2xx settles it as delivered; anything else is retried with exponential backoff, up to
       MAX_ATTEMPTS, after which it is settled as failed.
    """
    import urllib.error
    import urllib.request

    from django.utils import timezone

    from governance.models import WebhookAttempt, WebhookDelivery

    delivery = (
        WebhookDelivery.objects.select_related("endpoint")
        .filter(pk=delivery_id, state=WebhookDelivery.State.PENDING)
        .first()
    )
    if delivery is None:
        return None
    body = encode_payload({"event": delivery.event, "delivery": delivery.pk, "data": delivery.payload})
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "clinical-ai-governance-webhooks/1",
        EVENT_HEADER: delivery.event,
        DELIVERY_HEADER: str(delivery.pk),
        SIGNATURE_HEADER: sign(decrypt_secret(delivery.endpoint.secret_encrypted), body),
    }
    request = urllib.request.Request(delivery.endpoint.url, data=body, headers=headers, method="POST")  # noqa: S310
    started = time.monotonic()
    code: int | None = None
    error = ""
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (an admin-registered URL)
            code = response.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"[:300]
    duration_ms = int((time.monotonic() - started) * 1000)
    WebhookAttempt.objects.create(delivery=delivery, response_code=code, error=error, duration_ms=duration_ms)
    attempts = delivery.attempts + 1
    if code is not None and 200 <= code < 300:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            state=WebhookDelivery.State.DELIVERED,
            attempts=attempts,
            last_response_code=code,
            delivered_at=timezone.now(),
        )
        return None
    settled = attempts >= MAX_ATTEMPTS
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=attempts,
        last_response_code=code,
        state=WebhookDelivery.State.FAILED if settled else WebhookDelivery.State.PENDING,
    )
    return None if settled else backoff_seconds(attempts)
