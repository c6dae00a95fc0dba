"""Tokens through the API: created by a signed-in person and shown once, listed, revoked, refused after."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from governance.models import ApiToken, GovernanceEvent
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_a_member_creates_a_ci_token_sees_it_once_and_it_works(team) -> None:
    session = APIClient()
    session.force_authenticate(team.owner)
    response = session.post(
        "/api/v1/tokens/",
        {"organization": "st-elsewhere", "name": "github", "scope": "ci", "expires_in_days": 30},
        format="json",
    )
    assert response.status_code == 201, response.json()
    plaintext = response.json()["token"]
    assert plaintext.startswith("gov_") and response.json()["scope"] == "ci"
    listing = session.get("/api/v1/tokens/").json()["results"]
    assert [t["name"] for t in listing] == ["github"] and "token" not in listing[0]
    ci = APIClient()
    ci.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert ci.get("/api/v1/models/").status_code == 200


def test_a_token_cannot_mint_tokens(team) -> None:
    response = client_for(team.owner, team.organization).post(
        "/api/v1/tokens/", {"organization": "st-elsewhere", "name": "x", "scope": "write"}, format="json"
    )
    assert response.status_code == 403


def test_a_revoked_token_stops_working_at_once_and_the_revocation_is_recorded(team) -> None:
    client = client_for(team.owner, team.organization)
    token = ApiToken.objects.get(user=team.owner)
    assert client.delete(f"/api/v1/tokens/{token.pk}/").json()["revoked_at"] is not None
    assert client.get("/api/v1/models/").status_code == 401
    assert GovernanceEvent.objects.filter(action="api_token.revoked", object_id=str(token.pk)).exists()


def test_a_teammate_cannot_see_or_revoke_someone_elses_token_but_an_outsider_learns_nothing(team) -> None:
    client_for(team.owner, team.organization)
    owners_token = ApiToken.objects.get(user=team.owner)
    viewer = client_for(team.viewer, team.organization)
    assert owners_token.pk not in [t["id"] for t in viewer.get("/api/v1/tokens/").json()["results"]]
    assert viewer.delete(f"/api/v1/tokens/{owners_token.pk}/").status_code == 404
    outsider = client_for(team.outsider, team.outsider_organization)
    assert outsider.delete(f"/api/v1/tokens/{owners_token.pk}/").status_code == 404
    owners_token.refresh_from_db()
    assert owners_token.revoked_at is None
