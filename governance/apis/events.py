"""The audit trail over REST: the events of one's organizations, and a check of their hash chains."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from governance import selectors
from governance.apis.registry import GovernanceApi
from governance.audit_trail import organization_verify
from governance.models import GovernanceEvent


class GovernanceEventOutput(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = GovernanceEvent
        fields = [
            "id",
            "organization",
            "sequence",
            "created_at",
            "actor_name",
            "action",
            "object_type",
            "object_id",
            "before",
            "after",
            "request_id",
            "prev_hash",
            "hash",
        ]


class GovernanceEventListApi(GovernanceApi):
    FILTERS = ("action", "object_type", "object_id", "request_id")

    @extend_schema(
        parameters=[OpenApiParameter(name, str, required=False) for name in FILTERS],
        responses=GovernanceEventOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        """Governance events of the caller's organizations, newest first, filtered by any of the parameters."""
        organizations = selectors.organizations_visible(request.user, token=self.token)
        events = GovernanceEvent.objects.filter(organization__in=organizations).select_related("organization")
        filters = {name: request.query_params[name] for name in self.FILTERS if request.query_params.get(name)}
        return self.paginate(events.filter(**filters).order_by("-created_at", "-id"), GovernanceEventOutput)


class GovernanceEventVerifyApi(GovernanceApi):
    @extend_schema(
        responses=inline_serializer(
            "ChainVerification",
            {
                "intact": serializers.BooleanField(),
                "organizations": serializers.ListField(child=serializers.DictField()),
            },
        )
    )
    def get(self, request: Request) -> Response:
        """Walk the hash chain of each of the caller's organizations; name the first broken link, if any."""
        organizations = selectors.organizations_visible(request.user, token=self.token).order_by("slug")
        reports: list[dict[str, Any]] = [organization_verify(o) for o in organizations]
        return Response({"intact": all(r["intact"] for r in reports), "organizations": reports})
