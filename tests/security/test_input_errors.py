"""No 500 for any input, and the JSON error body wherever a client expects JSON.

The attacks (issue 16): a deeply nested JSON body on ``POST /api/chats`` (RecursionError,
500); a ``cursor`` that decodes to ``9999-12-31T23:59:59-23:59|<uuid>`` (OverflowError,
500); a 404 outside ``/api`` and the CSRF 403 were HTML pages.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from django.test import Client

from gateway import limits


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [limits.MAX_JSON_DEPTH + 1, 100_000])
def test_a_too_deeply_nested_body_is_a_400(alice: Any, depth: int) -> None:
    body = '{"title": ' + "[" * depth + "]" * depth + "}"

    response = alice.client.post("/api/chats", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "nested deeper than" in response.json()["message"]


@pytest.mark.django_db
def test_brackets_inside_strings_do_not_count_as_nesting(alice: Any) -> None:
    title = "[{" * 60

    response = alice.client.post("/api/chats", {"title": title}, format="json")

    assert response.status_code == 201
    assert response.json()["title"] == title


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [
    f"9999-12-31T23:59:59-23:59|{uuid.UUID(int=7)}",  # past the calendar once in UTC
    f"0001-01-01T00:00:00+23:59|{uuid.UUID(int=7)}",  # before it
    f"2026-01-01T00:00:00|{uuid.UUID(int=7)}",  # no offset
    "2026-01-01T00:00:00+00:00|not-a-uuid",
    "no separator",
])
def test_a_bad_cursor_is_a_400(alice: Any, raw: str) -> None:
    response = alice.client.get("/api/chats", {"cursor": _cursor(raw)})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_cursor"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/nothing", "/ws/nothing", "/dashboard/nothing",
                                  "/api", "/ws"])
def test_unknown_json_paths_answer_a_json_404(anon: Any, path: str) -> None:
    response = anon.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "not_found"


@pytest.mark.django_db
def test_a_page_path_keeps_the_html_404(anon: Any) -> None:
    response = anon.get("/nothing-here")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
@pytest.mark.parametrize("method,path", [("get", "/dashboard/token"),
                                         ("put", "/dashboard/token"),
                                         ("put", "/api/chats"),
                                         ("post", "/dashboard/me")])
def test_a_wrong_method_is_a_json_405(alice: Any, method: str, path: str) -> None:
    response = getattr(alice.client, method)(path)

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "method_not_allowed"


@pytest.mark.django_db
def test_a_csrf_failure_on_a_json_route_is_json(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("dora", password="dora-password-1")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)

    response = browser.post("/dashboard/token")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "csrf_failed"


@pytest.mark.django_db
def test_a_csrf_failure_on_the_login_page_stays_html() -> None:
    response = Client(enforce_csrf_checks=True).post("/login/", {"username": "x",
                                                                 "password": "y"})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
