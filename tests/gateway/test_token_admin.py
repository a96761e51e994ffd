"""Creating API tokens in the Django admin: the token is shown once and works; only its
digest is stored. Admin is staff; alice gets the token."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from gateway.models import ApiToken

pytestmark = pytest.mark.django_db
TOKEN = re.compile(r"gw_[0-9a-f]{64}")


def _admin_client(admin: Any) -> Client:
    client = Client()
    client.force_login(admin.user)
    return client


def _add(client: Client, **fields: Any) -> Any:
    return client.post("/admin/gateway/apitoken/add/", {"expiry_0": "", "expiry_1": "",
                                                         **fields}, follow=True)


def test_an_admin_creates_a_token_for_alice_and_sees_it_once(admin: Any, alice: Any) -> None:
    client = _admin_client(admin)
    assert client.get("/admin/gateway/apitoken/add/").status_code == 200

    response = _add(client, name="alice's bot", user=alice.user.pk)

    shown = [m.message for m in response.context["messages"]]
    token = next(TOKEN.search(m).group(0) for m in shown if "shown only this once" in m)
    row = ApiToken.objects.get(name="alice's bot")
    assert row.user == alice.user and row.expiry is None
    assert token not in (row.digest, row.token_key) and token.startswith(row.token_key)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/chats").status_code == 200
    # Opened again, the token is not shown (only its prefix).
    page = client.get(f"/admin/gateway/apitoken/{row.pk}/change/").content.decode()
    assert token not in page


def test_a_token_made_in_the_admin_may_expire(admin: Any, alice: Any) -> None:
    _add(_admin_client(admin), name="short", user=alice.user.pk,
         expiry_0="2099-01-01", expiry_1="00:00:00")

    assert ApiToken.objects.get(name="short").expiry.year == 2099


def test_a_member_cannot_reach_the_token_admin(alice: Any) -> None:
    client = Client()
    client.force_login(alice.user)

    response = client.get("/admin/gateway/apitoken/add/")

    assert response.status_code == 302 and "/login/" in response["Location"]
