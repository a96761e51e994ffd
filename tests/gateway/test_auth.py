"""Bearer-token authentication of the REST API (django-rest-knox underneath)."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from gateway.auth import create_token, user_for_token
from gateway.models import ApiToken

pytestmark = pytest.mark.django_db

UNAUTHORIZED = {"error": "unauthorized",
                "message": "Send a valid token as 'Authorization: Bearer <token>'."}


def _client(header: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    return client


def _assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401
    assert response.json() == UNAUTHORIZED
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_valid_token_gets_in(alice: Any) -> None:
    response = alice.client.get("/api/chats")

    assert response.status_code == 200
    assert response.json() == {"chats": [], "next": None}


def test_it_refuses_a_request_without_the_header(anon: APIClient) -> None:
    _assert_unauthorized(anon.get("/api/chats"))


@pytest.mark.parametrize("header", [
    "Bearer gw_0123456789abcdefthisisnotatoken",
    "Bearer ",
    "Bearer two words",
    "Token gw_0123456789abcdef",  # another scheme: not ours
    "gw_0123456789abcdef",
    "Bearer gw_caf\xe9",  # not ASCII: knox alone would crash decoding it
])
def test_it_refuses_a_wrong_or_malformed_header(alice: Any, header: str) -> None:
    _assert_unauthorized(_client(header).get("/api/chats"))


def test_it_refuses_alices_token_with_one_character_changed(alice: Any) -> None:
    last = "a" if alice.token[-1] != "a" else "b"

    _assert_unauthorized(_client(f"Bearer {alice.token[:-1]}{last}").get("/api/chats"))


def test_the_scheme_is_case_insensitive(alice: Any) -> None:
    assert _client(f"bearer {alice.token}").get("/api/chats").status_code == 200


def test_it_refuses_a_revoked_token(alice: Any) -> None:
    ApiToken.objects.filter(user=alice.user).delete()

    _assert_unauthorized(alice.client.get("/api/chats"))


def test_it_refuses_an_expired_token_and_forgets_it(alice: Any) -> None:
    row, token = create_token(alice.user, "short", dt.timedelta(hours=1))
    ApiToken.objects.filter(pk=row.pk).update(expiry=timezone.now() - dt.timedelta(seconds=1))

    _assert_unauthorized(_client(f"Bearer {token}").get("/api/chats"))
    assert not ApiToken.objects.filter(pk=row.pk).exists()
    # Alice's other token is untouched.
    assert alice.client.get("/api/chats").status_code == 200


def test_a_token_that_has_not_expired_yet_works(alice: Any) -> None:
    _, token = create_token(alice.user, "short", dt.timedelta(hours=1))

    assert _client(f"Bearer {token}").get("/api/chats").status_code == 200


def test_it_refuses_the_token_of_a_deactivated_user(alice: Any) -> None:
    alice.user.is_active = False
    alice.user.save()

    _assert_unauthorized(alice.client.get("/api/chats"))


def test_the_database_never_holds_the_plaintext_token(alice: Any) -> None:
    row = ApiToken.objects.get(user=alice.user)

    assert row.digest == hashlib.sha512(alice.token.encode()).hexdigest()
    assert alice.token.startswith("gw_")
    assert row.token_key == alice.token[:15]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")
        cells = [str(cell) for line in cursor.fetchall() for cell in line]
    assert cells  # the row is there ...
    assert not any(alice.token in cell for cell in cells)  # ... but not the token


def test_two_tokens_of_one_user_differ(alice: Any) -> None:
    _, first = create_token(alice.user)
    _, second = create_token(alice.user)

    assert first != second
    assert first != alice.token


def test_user_for_token_finds_the_owner_or_nobody(alice: Any, bob: Any) -> None:
    assert user_for_token(alice.token) == alice.user
    assert user_for_token(bob.token) == bob.user
    assert user_for_token("gw_nothing") is None
    assert user_for_token("") is None
    assert user_for_token(alice.token + "x" * 200) is None
