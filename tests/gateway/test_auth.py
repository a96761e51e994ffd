"""Bearer-token authentication of the REST API (django-rest-knox underneath)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from gateway.auth import create_token, lookup_token, user_for_token
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


# --- the checked-token cache of a process (gateway.auth.lookup_token) ---------------

def test_a_token_checked_once_is_checked_again_without_a_query(
        alice: Any, django_assert_num_queries: Any) -> None:
    assert lookup_token(alice.token) is not None
    with django_assert_num_queries(0):
        user, row = lookup_token(alice.token)
    assert user == alice.user and row.user is user


def test_a_cached_token_deleted_is_refused_at_once(alice: Any) -> None:
    assert alice.client.get("/api/chats").status_code == 200
    ApiToken.objects.get(user=alice.user).delete()

    _assert_unauthorized(alice.client.get("/api/chats"))


def test_a_cached_token_of_a_user_deactivated_is_refused_at_once(alice: Any) -> None:
    assert alice.client.get("/api/chats").status_code == 200
    alice.user.is_active = False
    alice.user.save(update_fields=["is_active"])

    _assert_unauthorized(alice.client.get("/api/chats"))


def test_an_admin_made_a_member_is_a_member_at_his_next_request(admin: Any) -> None:
    assert admin.client.get("/api/users").status_code == 200
    admin.user.is_staff = admin.user.is_superuser = False
    admin.user.save()

    assert admin.client.get("/api/users").status_code == 403
    assert lookup_token(admin.token)[0].is_staff is False


def test_a_cached_token_past_its_expiry_is_refused_and_deleted(alice: Any) -> None:
    row, token = create_token(alice.user, "short", dt.timedelta(hours=1))
    assert lookup_token(token) is not None
    later = timezone.now() + dt.timedelta(hours=1, seconds=1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert lookup_token(token) is None
    assert not ApiToken.objects.filter(pk=row.pk).exists()


def test_what_a_caller_changes_stays_with_that_caller(alice: Any) -> None:
    user, _ = lookup_token(alice.token)
    user.username = "mallory"
    user.is_staff = True

    again, row = lookup_token(alice.token)
    assert (again.username, again.is_staff) == ("alice", False)
    assert row.user.username == "alice"


def test_a_login_does_not_empty_the_cache(alice: Any, django_assert_num_queries: Any
                                          ) -> None:
    from django.contrib.auth.models import update_last_login

    lookup_token(alice.token)
    update_last_login(None, alice.user)
    with django_assert_num_queries(0):
        assert lookup_token(alice.token) is not None


def test_a_lost_version_means_checking_again(alice: Any,
                                             django_assert_num_queries: Any) -> None:
    from django.core.cache import cache

    from gateway import auth

    lookup_token(alice.token)
    cache.delete(auth.VERSION.key)  # Redis restarted, or the cache cleared
    with django_assert_num_queries(1):
        assert lookup_token(alice.token) is not None


def test_a_change_behind_the_signals_back_is_seen_after_the_cache_bound(
        alice: Any, settings: Any) -> None:
    settings.GATEWAY_AUTH_CACHE_SECONDS = 10
    assert lookup_token(alice.token) is not None
    type(alice.user).objects.filter(pk=alice.user.pk).update(is_active=False)  # no signal
    assert lookup_token(alice.token) is not None  # within the bound: the kept answer
    later = time.monotonic() + 10.5
    with mock.patch("gateway.auth.time.monotonic", return_value=later):
        assert lookup_token(alice.token) is None


def test_with_no_cache_bound_every_check_asks_the_database(
        alice: Any, settings: Any, django_assert_num_queries: Any) -> None:
    settings.GATEWAY_AUTH_CACHE_SECONDS = 0
    lookup_token(alice.token)
    with django_assert_num_queries(1):
        assert lookup_token(alice.token) is not None


def test_a_cache_that_cannot_be_read_means_checking_every_time(
        alice: Any, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any) -> None:
    from django.core.cache import cache

    lookup_token(alice.token)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis away")

    monkeypatch.setattr(cache, "get", down)
    for _ in range(2):
        with django_assert_num_queries(1):  # not the kept answer: it may be stale
            assert lookup_token(alice.token)[0] == alice.user
    ApiToken.objects.filter(user=alice.user).delete()
    assert lookup_token(alice.token) is None
