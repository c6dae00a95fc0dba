"""Failed token and sign-in attempts are counted per client address in the shared cache (real Redis in the
tests) and, past the limit, refused with 429 until the window ends; the right token still works elsewhere."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_guessing_tokens_is_refused_after_the_limit(team, settings) -> None:
    settings.AUTH_FAILURE_LIMIT = 5
    assert "RedisCache" in settings.CACHES["default"]["BACKEND"]
    guesser = APIClient(REMOTE_ADDR="203.0.113.7")
    codes = [
        guesser.get("/api/v1/models/", headers={"Authorization": f"Bearer gov_guess{i}"}).status_code for i in range(7)
    ]
    assert codes == [401] * 5 + [429] * 2
    blocked = guesser.get("/api/v1/models/", headers={"Authorization": "Bearer gov_guess-again"})
    assert int(blocked["Retry-After"]) >= 1 and "too many failed token attempts" in blocked.json()["detail"]
    # Once blocked, even a valid token from that address waits: the guesser cannot test a guess.
    valid = client_for(team.owner, team.organization)
    valid.defaults["REMOTE_ADDR"] = "203.0.113.7"
    assert valid.get("/api/v1/models/").status_code == 429
    # Another address is not affected, and successful requests are not counted.
    elsewhere = client_for(team.owner, team.organization)
    elsewhere.defaults["REMOTE_ADDR"] = "198.51.100.2"
    assert [elsewhere.get("/api/v1/models/").status_code for _ in range(8)] == [200] * 8
    # The counter lives in the shared cache, where every web process sees it.
    assert any(key.startswith(b":1:auth-failures:token:203.0.113.7") for key in cache._cache.get_client().keys("*"))


def test_guessing_passwords_at_the_admin_is_refused_after_the_limit(team, settings) -> None:
    settings.AUTH_FAILURE_LIMIT = 3
    client = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(3):
        page = client.post("/admin/login/", {"username": "victor", "password": "wrong"})
        assert "Please enter the correct username and password" in page.content.decode()
    page = client.post("/admin/login/", {"username": "victor", "password": "correct horse battery staple"})
    assert page.status_code == 200 and "Too many failed sign-ins from this address" in page.content.decode()
    assert "_auth_user_id" not in client.session


def test_pages_carry_the_security_headers_and_session_writes_need_the_csrf_token(team, settings) -> None:
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    page = Client().get("/admin/login/", secure=True)
    assert page["X-Frame-Options"] == "DENY"
    assert page["X-Content-Type-Options"] == "nosniff"
    assert page["Referrer-Policy"] == "same-origin"
    assert page["Cross-Origin-Opener-Policy"] == "same-origin"
    assert page["Strict-Transport-Security"].startswith("max-age=31536000")
    assert page.cookies["csrftoken"]["secure"]

    signed_in = Client().post(
        "/admin/login/", {"username": "olivia", "password": "correct horse battery staple"}, secure=True
    )
    session_cookie = signed_in.cookies["sessionid"]
    assert session_cookie["httponly"] and session_cookie["secure"] and session_cookie["samesite"] == "Lax"

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(team.owner)
    # A signed-in session may read the API, but a write without the CSRF token is refused.
    assert browser.get("/api/v1/models/").status_code == 200
    refused = browser.post("/api/v1/models/", {"organization": "st-elsewhere"}, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert browser.post("/admin/governance/aimodel/add/", {}).status_code == 403
