"""One JSON error body everywhere under /api/: never an HTML page, never a traceback."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def _assert_error(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == code
    assert set(body) <= {"error", "message", "fields"}
    assert isinstance(body["message"], str) and body["message"]
    return body


@pytest.mark.parametrize("path", [
    "/api/nope",
    "/api/chats/",  # no slash appended: the trailing slash is simply another URL
    "/api/chats/00000000-0000-0000-0000-000000000000/nope",
    "/api/",
    "/api",
    "/api/schema",
])
def test_an_unknown_api_url_is_a_json_404(alice: Any, path: str) -> None:
    body = _assert_error(alice.client.get(path), 404, "not_found")

    assert body == {"error": "not_found", "message": f"No such endpoint: GET {path}"}


def test_an_unknown_api_url_is_a_json_404_without_a_token_too(anon: APIClient) -> None:
    _assert_error(anon.post("/api/nope", {}, format="json"), 404, "not_found")


def test_outside_the_api_django_keeps_its_html_404(alice: Any) -> None:
    response = alice.client.get("/nope")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("method, path", [
    ("delete", "/api/chats"),
    ("put", "/api/chats"),
    ("post", "/api/permissions/tools"),
    ("delete", "/api/permissions"),
    ("patch", "/api/profiles"),
    ("put", "/api/tokens"),
])
def test_a_wrong_method_is_a_json_405(admin: Any, method: str, path: str) -> None:
    response = getattr(admin.client, method)(path, {}, format="json")

    body = _assert_error(response, 405, "method_not_allowed")
    assert body["message"] == f'Method "{method.upper()}" not allowed.'


@pytest.mark.parametrize("content_type, payload", [
    ("text/plain", "hello"),
    ("application/x-www-form-urlencoded", "title=hello"),
    ("application/xml", "<title>hello</title>"),
])
def test_a_body_that_is_not_json_is_a_415(alice: Any, content_type: str, payload: str) -> None:
    response = alice.client.post("/api/chats", payload, content_type=content_type)

    body = _assert_error(response, 415, "unsupported_media_type")
    assert body["message"] == "Send the body as JSON with 'Content-Type: application/json'."
    assert alice.client.get("/api/chats").json()["chats"] == []


@pytest.mark.parametrize("payload", ['{"title": "a"', "{'title': 'a'}", "nope", '{"a": 1}}',
                                     b'{"title": "\xff"}'])
def test_malformed_json_is_a_400_malformed_json(alice: Any, payload: str | bytes) -> None:
    response = alice.client.post("/api/chats", payload, content_type="application/json")

    body = _assert_error(response, 400, "malformed_json")
    assert body["message"].startswith("The body is not valid JSON: ")
    assert alice.client.get("/api/chats").json()["chats"] == []


def test_a_json_body_that_is_not_an_object_is_a_400_with_fields(admin: Any) -> None:
    response = admin.client.put("/api/permissions", [1, 2], format="json")

    body = _assert_error(response, 400, "invalid_request")
    assert body["fields"] == {"body": "Send a JSON object."}


def test_validation_errors_name_each_field(admin: Any) -> None:
    response = admin.client.put("/api/config/sandbox",
                                {"cpu_seconds": 0, "workspace_mode": "rx"}, format="json")

    body = _assert_error(response, 400, "invalid_request")
    assert body["fields"] == {
        "cpu_seconds": "Ensure this value is greater than or equal to 1.",
        "workspace_mode": '"rx" is not a valid choice.',
    }
    assert body["message"].startswith("Invalid request: ")


def test_an_unexpected_crash_is_a_json_500_without_a_traceback(
        alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_id = alice.client.post("/api/chats", {}, format="json").json()["chat_id"]

    def explode(chat: Any) -> dict:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr("chats.services.context_report", explode)
    alice.client.raise_request_exception = False

    response = alice.client.get(f"/api/chats/{chat_id}/context")

    body = _assert_error(response, 500, "internal_error")
    assert body == {"error": "internal_error", "message": "The gateway hit an unexpected "
                    "error; it was logged. Try again."}
    text = response.content.decode()
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    assert "secret internals" not in text


def test_a_request_for_another_host_is_a_json_400(alice: Any) -> None:
    response = alice.client.get("/api/chats", HTTP_HOST="evil.example")

    _assert_error(response, 400, "bad_request")


def test_a_body_over_the_size_limit_is_a_json_413(alice: Any, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    payload = '{"title": "' + "x" * 2000 + '"}'

    response = alice.client.post("/api/chats", payload, content_type="application/json")

    body = _assert_error(response, 413, "request_too_large")
    assert "1024" in body["message"]
    assert alice.client.get("/api/chats").json()["chats"] == []


def test_a_member_forbidden_from_a_change_gets_the_json_403(alice: Any) -> None:
    response = alice.client.put("/api/permissions", {"mode": "autonomous"}, format="json")

    assert _assert_error(response, 403, "forbidden") == {
        "error": "forbidden", "message": "Only admins may do this."}
