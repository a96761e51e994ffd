"""/api/schema/ (OpenAPI, from drf-spectacular) and /api/docs/ (Swagger UI).

Both are public, as drf-spectacular serves them by default (``SERVE_PERMISSIONS`` is
AllowAny): the schema describes the API, it holds no data. Every operation but /health
declares the bearer token.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

SPEC_PATHS = {
    "/health": {"get"},
    "/api/chats": {"get", "post"},
    "/api/chats/{chat_id}": {"get", "patch", "delete"},
    "/api/chats/{chat_id}/context": {"get"},
    "/api/chats/{chat_id}/compact": {"post"},
    "/api/chats/{chat_id}/cancel": {"post"},
    "/api/chats/{chat_id}/profile": {"get", "put", "post"},
    "/api/profiles": {"get", "post"},
    "/api/profiles/{name}": {"get", "delete"},
    "/api/profiles/default": {"get", "put", "post"},
    "/api/permissions": {"get", "put"},
    "/api/permissions/tools": {"get"},
    "/api/config/sandbox": {"get", "put", "post"},
    "/api/tokens": {"get", "post"},
}
HTTP_METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module")
def schema() -> dict:
    """Generated once: building the schema walks every view (and touches no database)."""
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_public_yaml_by_default(anon: APIClient) -> None:
    response = anon.get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.startswith(b"openapi: 3.")


def test_the_schema_is_json_when_asked(alice: Any) -> None:
    response = alice.client.get("/api/schema/?format=json")

    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.")


def test_the_schema_names_the_api_and_its_version(schema: dict) -> None:
    assert schema["info"]["title"] == "Agent gateway API"
    assert schema["info"]["version"] == settings.VERSION


def test_the_schema_lists_every_endpoint_of_the_spec(schema: dict) -> None:
    for path, methods in SPEC_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), path


def test_the_schema_declares_the_bearer_token(schema: dict) -> None:
    assert schema["components"]["securitySchemes"] == {
        "bearerToken": {"type": "http", "scheme": "bearer"}}


def test_every_api_operation_needs_the_token(schema: dict) -> None:
    for path, item in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            if method in HTTP_METHODS:
                assert operation["security"] == [{"bearerToken": []}], (method, path)


def test_health_needs_no_token(schema: dict) -> None:
    assert schema["paths"]["/health"]["get"]["security"] == [{}]


def test_the_schema_describes_request_bodies(schema: dict) -> None:
    body = schema["paths"]["/api/chats"]["post"]["requestBody"]["content"]["application/json"]

    assert body["schema"] == {"$ref": "#/components/schemas/ChatCreateRequest"}
    assert set(schema["components"]["schemas"]["ChatCreateRequest"]["properties"]) == {
        "title", "profile"}


def test_the_docs_page_renders_swagger_ui(anon: APIClient) -> None:
    response = anon.get("/api/docs/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "/api/schema/" in page
