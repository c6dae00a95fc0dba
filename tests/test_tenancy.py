"""Every API endpoint, tried by each kind of caller: the owner's teammates, a teammate with too low a role, an
outsider from another organization, an expired or revoked token, and no token.

The table of endpoints is derived from the URL configuration, so a new endpoint is tried too. An outsider
gets the same 404 for another organization's object as for one that does not exist: nothing tells them it
is there.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
from django.urls import URLPattern, get_resolver
from django.utils import timezone

from governance.models import ApiToken, GovernanceEvent
from governance.services import api_token_revoke
from tests.conftest import (
    CLINICAL_ROLES,
    OUTCOME_ROLES,
    client_for,
    clinical_frame,
    csv_upload,
)

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
MISSING = 987654321


def api_endpoints() -> list[tuple[str, str]]:
    """(route, method) for every route under /api/v1/ and every method its view answers."""
    resolver = get_resolver()
    found = []
    for pattern in resolver.url_patterns:
        if str(pattern.pattern) != "api/v1/":
            continue
        for inner in pattern.url_patterns:  # type: ignore[attr-defined]
            assert isinstance(inner, URLPattern)
            view = inner.callback.view_class  # type: ignore[attr-defined]
            found += [(str(inner.pattern), m) for m in METHODS if hasattr(view, m)]
    return found


def bodies(objects: dict[str, Any]) -> dict[tuple[str, str], tuple[dict[str, Any], str]]:
    """Requests that pass validation, so that what answers a teammate with too low a role is the role check."""
    window = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-08T00:00:00Z"}
    return {
        ("models/", "post"): ({"organization": "st-elsewhere", "name": "x", "slug": "x", "intended_use": "x"}, "json"),
        ("models/<int:model_id>/versions/", "post"): ({"version": "9.9.9"}, "json"),
        ("models/<int:model_id>/schedules/", "post"): ({"name": "Nightly", "cron": "0 2 * * *"}, "json"),
        ("models/<int:model_id>/monitoring-reports/", "post"): ({"start": "2026-11-01", "end": "2026-11-08"}, "json"),
        ("models/<int:model_id>/hti1/<slug:key>/", "put"): ({"value": "Sepsis bundle prompts"}, "json"),
        ("findings/<int:finding_id>/triage/", "post"): ({"action": "acknowledge"}, "json"),
        ("alerts/<int:alert_id>/resolve/", "post"): ({"resolution": "looked into it at length"}, "json"),
        ("versions/<int:version_id>/transition/", "post"): ({"stage": "validation"}, "json"),
        ("versions/<int:version_id>/batches/", "post"): (
            {
                "kind": "outcomes",
                "file": csv_upload(pd.DataFrame({"encounter_id": [1], "sepsis": [0]})),
                "column_roles": json.dumps(OUTCOME_ROLES),
            },
            "multipart",
        ),
        ("versions/<int:version_id>/windows/", "post"): (window, "json"),
        ("datasets/", "post"): (
            {
                "organization": "st-elsewhere",
                "name": "x",
                "kind": "evaluation",
                "file": csv_upload(clinical_frame(60)),
                "column_roles": json.dumps(CLINICAL_ROLES),
            },
            "multipart",
        ),
        ("audits/", "post"): ({"model_version": objects["version_id"], "dataset": objects["dataset_id"]}, "json"),
        ("reports/<int:report_id>/sign-offs/", "post"): ({"statement": "Reviewed by the committee"}, "json"),
    }


def path_of(route: str, ids: dict[str, Any]) -> str:
    return "/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(ids[m.group(1)]), route)


def test_the_table_covers_the_api() -> None:
    routes = {route for route, _ in api_endpoints()}
    assert len(routes) >= 38 and "audits/<int:run_id>/" in routes and "events/verify/" in routes


def test_without_a_valid_token_every_endpoint_answers_401(team, api_objects) -> None:
    from rest_framework.test import APIClient

    expired_client = client_for(team.owner, team.organization)
    ApiToken.objects.filter(user=team.owner, name=f"{team.owner.username}-write").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    revoked_client = client_for(team.viewer, team.organization)
    api_token_revoke(token=ApiToken.objects.get(name=f"{team.viewer.username}-write"), actor=team.viewer)
    callers = {"no token": APIClient(), "expired token": expired_client, "revoked token": revoked_client}
    for number, (route, method) in enumerate(api_endpoints()):
        for kind, (name, client) in enumerate(callers.items()):
            # Each failed attempt from an address of its own: the guess limit is tested elsewhere.
            client.defaults["REMOTE_ADDR"] = f"10.{kind}.{number // 250}.{number % 250}"
            response = getattr(client, method)(path_of(route, api_objects), {}, format="json")
            assert response.status_code == 401, f"{name} {method.upper()} {route}: {response.status_code}"


def test_an_outsider_gets_the_same_404_as_for_nothing_at_all(team, api_objects) -> None:
    outsider = client_for(team.outsider, team.outsider_organization)
    missing = dict.fromkeys(api_objects, MISSING) | {"key": api_objects["key"]}
    events_before = GovernanceEvent.objects.filter(organization=team.organization).count()
    checked = 0
    for route, method in api_endpoints():
        if "<" not in route:
            continue
        theirs = getattr(outsider, method)(path_of(route, api_objects), {}, format="json")
        nothing = getattr(outsider, method)(path_of(route, missing), {}, format="json")
        where = f"{method.upper()} {route}"
        assert theirs.status_code == 404, f"{where}: {theirs.status_code} {theirs.content[:200]!r}"
        assert theirs.content == nothing.content, where
        checked += 1
    assert checked >= 35
    assert GovernanceEvent.objects.filter(organization=team.organization).count() == events_before


def test_an_outsiders_lists_hold_nothing_of_another_organization(team, api_objects) -> None:
    outsider = client_for(team.outsider, team.outsider_organization)
    for route, method in api_endpoints():
        if "<" in route or method != "get":
            continue
        body = outsider.get(path_of(route, api_objects)).content.decode()
        assert "st-elsewhere" not in body and "olivia" not in body, route
    # Creating in another organization is refused as if it did not exist.
    body = {"organization": "st-elsewhere", "name": "x", "slug": "x", "intended_use": "x"}
    theirs = outsider.post("/api/v1/models/", body, format="json")
    nothing = outsider.post("/api/v1/models/", body | {"organization": "no-such-place"}, format="json")
    assert theirs.status_code in (400, 404) and theirs.content == nothing.content.replace(
        b"no-such-place", b"st-elsewhere"
    )


def test_a_teammate_with_too_low_a_role_reads_but_changes_nothing(team, api_objects) -> None:
    viewer = client_for(team.viewer, team.organization)
    events_before = GovernanceEvent.objects.count()
    wrong = []
    valid = bodies(api_objects)
    for route, method in api_endpoints():
        body, body_format = valid.get((route, method), ({}, "json"))
        response = getattr(viewer, method)(path_of(route, api_objects), body, format=body_format)
        if method == "get":
            expected = {200, 400}  # 400: a read that needs parameters (series)
        elif route == "tokens/<int:token_id>/":
            expected = {404}  # someone else's token: not even visible
        else:
            expected = {403}  # tokens too: they are made by a person signed in
        if response.status_code not in expected:
            wrong.append(f"{method.upper()} {route}: {response.status_code} {response.content[:160]!r}")
    assert not wrong, "\n".join(wrong)
    assert GovernanceEvent.objects.count() == events_before


def test_no_admin_page_shows_an_outsider_another_organizations_objects(team, api_objects) -> None:
    from django.contrib import admin
    from django.test import Client

    from governance.admin_site import OrganizationScopedAdmin

    client = Client()
    client.force_login(team.outsider)
    checked = 0
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, OrganizationScopedAdmin):
            continue  # Django's own (users, groups, beat) are for superusers only
        path = model_admin.organization_path
        theirs = model._default_manager.filter(**{path or "pk": team.organization.pk})
        changelist = client.get(f"/admin/{model._meta.app_label}/{model._meta.model_name}/")
        assert changelist.status_code in (200, 403), model
        listed = changelist.content.decode()
        for obj in theirs[:20]:
            url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/{obj.pk}/change/"
            page = client.get(url)
            # The answer to a missing object: back to the index naming nothing (Django's), or 404 (the run page).
            missing = client.get(url.replace(f"/{obj.pk}/", f"/{MISSING}/"))
            assert (page.status_code, page.get("Location")) == (missing.status_code, missing.get("Location")), url
            assert page.status_code in (302, 404) and page.get("Location", "/admin/") == "/admin/", url
            assert f"/{obj.pk}/change/" not in listed, url
            checked += 1
    assert checked >= 15
