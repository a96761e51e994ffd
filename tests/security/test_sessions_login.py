"""Password sign-in has an attempt limit (django-axes), per address and per user name.

The attack (issue 16): 30 wrong passwords on ``/login/`` (or ``/admin/login/``), then the
right one worked. Now, after ``GATEWAY_AUTH_FAIL_LIMIT`` failures in the window, from one
address or for one user name, sign-in answers 429 with a clear message, also with the
right password, until the window has passed; tokens are not affected. The real-server
version is in ``test_sessions_serve.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

PASSWORD = "erin-has-a-good-password"
LOGIN_PAGES = ["/login/", "/admin/login/"]


@pytest.fixture
def limit(settings: Any) -> int:
    settings.AXES_FAILURE_LIMIT = 3
    return 3


@pytest.fixture
def erin(django_user_model: Any, settings: Any) -> Any:
    # A fast hasher: these tests sign in dozens of times (the real one is slow on purpose).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return django_user_model.objects.create_user("erin", password=PASSWORD, is_staff=True)


def sign_in(page: str, username: str, password: str, address: str) -> Any:
    return Client(REMOTE_ADDR=address).post(page, {"username": username,
                                                   "password": password})


def signed_in(response: Any) -> bool:
    return response.status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_the_right_password_is_refused_after_too_many_wrong_ones(erin: Any, limit: int,
                                                                  page: str) -> None:
    for _ in range(limit - 1):
        assert sign_in(page, "erin", "wrong", "10.1.0.1").status_code == 200  # form again
    assert sign_in(page, "erin", "wrong", "10.1.0.1").status_code == 429  # the limit-th

    refused = sign_in(page, "erin", PASSWORD, "10.1.0.1")

    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.content.decode()
    assert int(refused["Retry-After"]) >= 1


@pytest.mark.django_db
def test_a_user_name_is_locked_whatever_the_address(erin: Any, limit: int) -> None:
    for n in range(limit):
        sign_in("/login/", "erin", "wrong", f"10.2.0.{n}")

    assert sign_in("/login/", "erin", PASSWORD, "10.2.1.1").status_code == 429


@pytest.mark.django_db
def test_an_address_is_locked_whatever_the_user_name(erin: Any, limit: int) -> None:
    for n in range(limit):
        sign_in("/admin/login/", f"guess{n}", "wrong", "10.3.0.1")

    assert sign_in("/admin/login/", "erin", PASSWORD, "10.3.0.1").status_code == 429
    assert signed_in(sign_in("/admin/login/", "erin", PASSWORD, "10.3.0.2"))


@pytest.mark.django_db
def test_fewer_failures_than_the_limit_do_not_lock(erin: Any, limit: int) -> None:
    for _ in range(limit - 1):
        sign_in("/login/", "erin", "wrong", "10.4.0.1")

    assert signed_in(sign_in("/login/", "erin", PASSWORD, "10.4.0.1"))


@pytest.mark.django_db
def test_a_valid_token_from_a_locked_address_still_works(erin: Any, alice: Any,
                                                         limit: int) -> None:
    for _ in range(limit + 2):
        sign_in("/login/", "erin", "wrong", "10.5.0.1")

    response = alice.client.get("/api/chats", REMOTE_ADDR="10.5.0.1")

    assert response.status_code == 200


@pytest.mark.django_db
def test_zero_turns_the_sign_in_limit_off(erin: Any, settings: Any) -> None:
    settings.AXES_ENABLED = False
    for _ in range(10):
        sign_in("/login/", "erin", "wrong", "10.6.0.1")

    assert signed_in(sign_in("/login/", "erin", PASSWORD, "10.6.0.1"))
