"""The dashboard's Django side without a browser: the page, its static files, the
session's token and the who-am-I view."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from gateway.models import ApiToken


@pytest.fixture
def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def signed_in(browser: Client, user) -> str:
    """Log the browser in; returns the CSRF token the page would send."""
    browser.force_login(user)
    page = browser.get("/")
    return page.cookies["csrftoken"].value


@pytest.mark.django_db
def test_the_page_is_served_with_a_strict_content_security_policy(browser):
    page = browser.get("/")
    assert page.status_code == 200
    assert 'id="token-form"' in page.content.decode()
    policy = page["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "ws://testserver" in policy
    assert "no-store" in page["Cache-Control"]


def test_static_files_are_served_without_debug(client, settings):
    settings.DEBUG = False
    script = client.get("/static/dashboard/app.js")
    assert script.status_code == 200 and script["Cache-Control"] == "no-cache"
    assert b"gatewayDashboard" in b"".join(script.streaming_content)
    assert client.get("/static/admin/css/base.css").status_code == 200
    assert client.get("/static/dashboard/nope.js").status_code == 404


@pytest.mark.django_db
def test_a_signed_in_session_gets_a_dashboard_token_that_expires(browser, alice):
    csrf = signed_in(browser, alice.user)
    minted = browser.post("/dashboard/token", HTTP_X_CSRFTOKEN=csrf)
    assert minted.status_code == 201
    body = minted.json()
    assert body["name"] == "dashboard" and body["token"].startswith("gw_")
    row = ApiToken.objects.get(token_key=body["id"])
    assert row.user == alice.user
    assert dt.timedelta(hours=11) < row.expiry - timezone.now() <= dt.timedelta(hours=12)
    me = Client().get("/dashboard/me", HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    assert me.json() == {"username": "alice", "is_staff": False}


@pytest.mark.django_db
def test_the_token_view_refuses_without_csrf_or_session(browser, alice):
    assert browser.post("/dashboard/token").status_code == 403  # no CSRF token
    csrf = browser.get("/").cookies["csrftoken"].value
    refused = browser.post("/dashboard/token", HTTP_X_CSRFTOKEN=csrf)
    assert refused.status_code == 401 and refused.json()["error"] == "not_authenticated"
    signed_in(browser, alice.user)
    assert browser.post("/dashboard/token").status_code == 403  # session, but no CSRF
    assert browser.get("/dashboard/token").status_code == 405


@pytest.mark.django_db
def test_minting_tidies_the_users_expired_dashboard_tokens(browser, alice):
    expired = ApiToken.objects.create(user=alice.user, name="dashboard",
                                      expiry=dt.timedelta(hours=-1))[0]
    kept = ApiToken.objects.create(user=alice.user, name="cli", expiry=dt.timedelta(hours=-1))[0]
    csrf = signed_in(browser, alice.user)
    assert browser.post("/dashboard/token", HTTP_X_CSRFTOKEN=csrf).status_code == 201
    remaining = set(ApiToken.objects.filter(user=alice.user).values_list("pk", flat=True))
    assert expired.pk not in remaining and kept.pk in remaining


@pytest.mark.django_db
def test_me_needs_a_token(anon, admin):
    assert anon.get("/dashboard/me").status_code == 401
    assert admin.client.get("/dashboard/me").json() == {"username": "admin", "is_staff": True}


@pytest.mark.django_db
def test_logout_ends_the_session(browser, alice):
    csrf = signed_in(browser, alice.user)
    assert browser.post("/logout/", HTTP_X_CSRFTOKEN=csrf).status_code == 302
    assert "_auth_user_id" not in browser.session
