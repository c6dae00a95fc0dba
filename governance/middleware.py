"""Request ids: every request carries one, so governance events can be tied to it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse

_request_id: ContextVar[str] = ContextVar("request_id", default="")
_VALID_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def current_request_id() -> str:
    return _request_id.get()


class RequestIdMiddleware:
    """Takes X-Request-ID from the caller when it is well formed, else makes one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_ID.match(incoming) else uuid.uuid4().hex
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RefuseNulMiddleware:
    """A NUL character in the URL or its query can be stored nowhere (PostgreSQL text refuses it): 400, naming it.

    Form and JSON fields are refused by Django's and DRF's own validators; this covers the path and the
    query string, which the views pass to the database as filters.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from urllib.parse import unquote

        if "\x00" in request.path or "\x00" in unquote(request.META.get("QUERY_STRING", "")):
            from django.http import JsonResponse

            return JsonResponse(
                {"detail": "the URL contains a NUL (0x00) character, which no field can hold"}, status=400
            )
        return self.get_response(request)
