"""API token authentication: `Authorization: Bearer gov_...`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from governance.services import api_token_authenticate
from governance.throttle import failure_record, seconds_blocked


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        wait = seconds_blocked(request, "token")
        if wait:
            raise exceptions.Throttled(wait=wait, detail="too many failed token attempts from this address")
        if len(header) != 2:
            failure_record(request, "token")
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'")
        token = api_token_authenticate(header[1])
        if token is None:
            failure_record(request, "token")
            raise exceptions.AuthenticationFailed("the token is unknown, expired or revoked")
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """Describes the token scheme in the OpenAPI schema, so the docs page offers 'Authorize'."""

    target_class = "governance.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "gov_…", "description": "An API token"}
