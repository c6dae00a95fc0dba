"""Idempotency-Key for submissions: a retried request gets the first response, never a second effect.

The first request with a key claims it by inserting a row (the unique constraint on
organization and key decides who is first, also between concurrent requests), runs, and
stores its response. A later request with the same key waits for the first to finish and gets
the stored response, marked `Idempotent-Replayed: true`. The same key with a different request
is refused (422). A request that failed with a server error releases its key, so the client's
retry runs again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from governance.models import ApiToken, IdempotencyRecord

HEADER = "Idempotency-Key"
WAIT_SECONDS = 30.0


def request_fingerprint(request: Request) -> str:
    """What identifies the request: method, path, and its fields (files by name and size)."""
    fields: dict[str, Any] = {}
    for name, value in request.data.items():
        fields[name] = [value.name, value.size] if hasattr(value, "read") else value
    for name, upload in request.FILES.items():
        fields[name] = [upload.name, upload.size]
    payload = json.dumps([request.method, request.path, fields], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def idempotent(view_method: Callable[..., Response]) -> Callable[..., Response]:
    """Make a POST handler honour the Idempotency-Key header (optional: without it nothing changes)."""

    @functools.wraps(view_method)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER, "").strip()
        if not key:
            return view_method(view, request, *args, **kwargs)
        if len(key) > 200:
            return Response({"detail": f"{HEADER} is longer than 200 characters"}, status=status.HTTP_400_BAD_REQUEST)
        organization_id = _organization_id(request)
        if organization_id is None:
            return Response(
                {"detail": f"{HEADER} needs a token, which names the organization"}, status=status.HTTP_400_BAD_REQUEST
            )
        fingerprint = request_fingerprint(request)
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    organization_id=organization_id, key=key, fingerprint=fingerprint
                )
        except IntegrityError:
            return _replay(organization_id, key, fingerprint)
        try:
            response = view_method(view, request, *args, **kwargs)
        except Exception as exc:
            try:
                # Errors the user caused become their 4xx response, stored and replayed like any other.
                response = view.handle_exception(exc)
            except Exception:
                record.delete()
                raise

        if response.status_code >= 500:
            record.delete()
            return response
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            state=IdempotencyRecord.State.DONE, response_status=response.status_code, response_body=response.data
        )
        return response

    return wrapper


def _organization_id(request: Request) -> int | None:
    token = request.auth
    return token.organization_id if isinstance(token, ApiToken) else None


def _replay(organization_id: int, key: str, fingerprint: str) -> Response:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        record = IdempotencyRecord.objects.filter(organization_id=organization_id, key=key).first()
        if record is None:
            # The first request failed with a server error and released the key: tell the client to retry.
            return Response(
                {"detail": f"the first request with this {HEADER} failed; retry"}, status=status.HTTP_409_CONFLICT
            )
        if record.fingerprint != fingerprint:
            return Response(
                {"detail": f"this {HEADER} was used for a different request; use a new key for a new request"},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        if record.state == IdempotencyRecord.State.DONE:
            response = Response(record.response_body, status=record.response_status)
            response["Idempotent-Replayed"] = "true"
            return response
        if time.monotonic() > deadline:
            return Response(
                {"detail": f"a request with this {HEADER} is still in progress; retry later"},
                status=status.HTTP_409_CONFLICT,
            )
        time.sleep(0.1)
