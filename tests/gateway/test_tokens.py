"""/api/tokens: a user lists, creates and revokes their own API tokens, and no one else's."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from gateway.models import ApiToken

pytestmark = pytest.mark.django_db

TOKEN_KEYS = {"id", "name", "prefix", "created", "expiry"}


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_alice_lists_her_own_tokens_only(alice: Any, bob: Any) -> None:
    response = alice.client.get("/api/tokens")

    assert response.status_code == 200
    tokens = response.json()["tokens"]
    assert len(tokens) == 1
    assert set(tokens[0]) == TOKEN_KEYS | {"current"}
    assert tokens[0]["id"] == alice.token[:15]
    assert tokens[0]["prefix"] == alice.token[:15]
    assert tokens[0]["name"] == "test"
    assert tokens[0]["expiry"] is None
    assert tokens[0]["current"] is True
    assert bob.token[:15] not in str(response.json())


def test_the_listing_marks_only_the_token_in_use_as_current(alice: Any) -> None:
    created = alice.client.post("/api/tokens", {"name": "laptop"}, format="json").json()

    tokens = _client(created["token"]).get("/api/tokens").json()["tokens"]

    current = {t["name"]: t["current"] for t in tokens}
    assert current == {"laptop": True, "test": False}


def test_the_listing_never_shows_a_token_itself(alice: Any) -> None:
    response = alice.client.get("/api/tokens")

    assert alice.token not in response.content.decode()


def test_alice_creates_a_named_token(alice: Any) -> None:
    response = alice.client.post("/api/tokens", {"name": "laptop"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == TOKEN_KEYS | {"token"}
    assert body["name"] == "laptop"
    assert body["token"].startswith("gw_")
    assert body["id"] == body["token"][:15]
    assert body["expiry"] is None
    row = ApiToken.objects.get(token_key=body["id"])
    assert row.user == alice.user
    assert row.name == "laptop"


def test_a_token_without_a_name_is_called_default(alice: Any) -> None:
    body = alice.client.post("/api/tokens", {}, format="json").json()

    assert body["name"] == "default"


def test_a_token_may_expire_after_some_days(alice: Any) -> None:
    before = timezone.now()

    body = alice.client.post("/api/tokens", {"name": "ci", "expires_in_days": 7},
                             format="json").json()

    expiry = dt.datetime.fromisoformat(body["expiry"])
    assert before + dt.timedelta(days=7) <= expiry <= timezone.now() + dt.timedelta(days=7)


def test_the_created_token_authenticates_as_alice(alice: Any) -> None:
    token = alice.client.post("/api/tokens", {"name": "laptop"}, format="json").json()["token"]

    client = _client(token)
    client.post("/api/chats", {"title": "from the laptop"}, format="json")
    chats = alice.client.get("/api/chats").json()["chats"]

    assert [c["title"] for c in chats] == ["from the laptop"]


@pytest.mark.parametrize("body, field", [
    ({"name": "x" * 101}, "name"),
    ({"expires_in_days": 0}, "expires_in_days"),
    ({"expires_in_days": 3651}, "expires_in_days"),
    ({"expires_in_days": "soon"}, "expires_in_days"),
    ({"scope": "all"}, "scope"),
])
def test_it_validates_the_new_token(alice: Any, body: dict, field: str) -> None:
    response = alice.client.post("/api/tokens", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert set(response.json()["fields"]) == {field}
    assert ApiToken.objects.filter(user=alice.user).count() == 1


def test_alice_revokes_a_token_and_it_stops_working(alice: Any) -> None:
    created = alice.client.post("/api/tokens", {"name": "laptop"}, format="json").json()
    laptop = _client(created["token"])
    assert laptop.get("/api/chats").status_code == 200

    response = alice.client.delete(f"/api/tokens/{created['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert laptop.get("/api/chats").status_code == 401
    assert alice.client.get("/api/chats").status_code == 200


def test_alice_may_revoke_the_token_she_is_using(alice: Any) -> None:
    response = alice.client.delete(f"/api/tokens/{alice.token[:15]}")

    assert response.status_code == 204
    assert alice.client.get("/api/tokens").status_code == 401


def test_bob_cannot_revoke_alices_token(alice: Any, bob: Any) -> None:
    response = bob.client.delete(f"/api/tokens/{alice.token[:15]}")

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "No such token."}
    assert alice.client.get("/api/chats").status_code == 200


def test_revoking_an_unknown_token_is_not_found(alice: Any) -> None:
    response = alice.client.delete("/api/tokens/gw_nope")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_tokens_need_a_token(anon: APIClient, alice: Any) -> None:
    assert anon.get("/api/tokens").status_code == 401
    assert anon.post("/api/tokens", {}, format="json").status_code == 401
    assert anon.delete(f"/api/tokens/{alice.token[:15]}").status_code == 401
    assert alice.client.get("/api/chats").status_code == 200
