"""``GET /api/asyncapi.json`` serves the generated document, without a token, and the
OpenAPI description links to it."""

from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from agents import asyncapi

pytestmark = pytest.mark.django_db


def test_the_route_serves_the_generated_document_without_a_token() -> None:
    response = APIClient().get("/api/asyncapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == asyncapi.document()


def test_a_wrong_token_does_not_matter_and_writes_are_refused() -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer gw_not_a_token")
    assert client.get("/api/asyncapi.json").status_code == 200
    response = client.post("/api/asyncapi.json", {}, format="json")
    assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


def test_the_openapi_description_links_the_document() -> None:
    assert "/api/asyncapi.json" in settings.SPECTACULAR_SETTINGS["DESCRIPTION"]
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/asyncapi.json" in schema["info"]["description"]
    assert "/api/asyncapi.json" not in schema["paths"]  # a document, like /api/schema/
