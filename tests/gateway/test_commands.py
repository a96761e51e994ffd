"""``manage.py issue_token``: creates the user if missing, prints the token last."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from gateway.models import ApiToken

pytestmark = pytest.mark.django_db

User = get_user_model()


def _issue(*args: str) -> tuple[str, str]:
    """Run the command; returns (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command("issue_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_it_creates_the_user_and_prints_a_working_token_last() -> None:
    out, err = _issue("carol")

    token = _last_line(out)
    assert token.startswith("gw_")
    carol = User.objects.get(username="carol")
    assert not carol.has_usable_password()
    assert ApiToken.objects.get(user=carol).token_key == token[:15]
    response = _client(token).get("/api/chats")
    assert response.status_code == 200
    assert "Created" in err and "'carol'" in err


def test_stdout_holds_nothing_but_the_token() -> None:
    out, _ = _issue("carol")

    assert out.strip().count("\n") == 0


def test_the_first_user_created_becomes_admin() -> None:
    out, err = _issue("carol")

    carol = User.objects.get(username="carol")
    assert carol.is_staff and carol.is_superuser
    assert "admin user 'carol'" in err
    response = _client(_last_line(out)).put("/api/permissions", {"mode": "autonomous"},
                                              format="json")
    assert response.status_code == 200


def test_later_users_are_members(alice: Any) -> None:
    out, err = _issue("carol")

    carol = User.objects.get(username="carol")
    assert not carol.is_staff and not carol.is_superuser
    assert "member user 'carol'" in err
    response = _client(_last_line(out)).put("/api/permissions", {"mode": "autonomous"},
                                              format="json")
    assert response.status_code == 403


def test_admin_flag_makes_the_user_staff(alice: Any) -> None:
    _issue("carol", "--admin")

    carol = User.objects.get(username="carol")
    assert carol.is_staff and carol.is_superuser


def test_admin_flag_promotes_an_existing_member(alice: Any) -> None:
    out, err = _issue("alice", "--admin")

    alice.user.refresh_from_db()
    assert alice.user.is_staff and alice.user.is_superuser
    assert "Existing admin user 'alice'" in err
    assert _client(_last_line(out)).get("/api/chats").status_code == 200


def test_an_existing_user_keeps_her_role_and_her_other_tokens(alice: Any) -> None:
    out, _ = _issue("alice")

    alice.user.refresh_from_db()
    assert not alice.user.is_staff
    assert ApiToken.objects.filter(user=alice.user).count() == 2
    assert alice.client.get("/api/chats").status_code == 200
    assert _client(_last_line(out)).get("/api/chats").status_code == 200
    assert User.objects.filter(username="alice").count() == 1


def test_the_token_is_named_cli_unless_told(alice: Any) -> None:
    first, _ = _issue("carol")
    second, _ = _issue("carol", "--name", "laptop")

    assert ApiToken.objects.get(token_key=_last_line(first)[:15]).name == "cli"
    assert ApiToken.objects.get(token_key=_last_line(second)[:15]).name == "laptop"


def test_the_token_may_expire_after_some_days(alice: Any) -> None:
    out, _ = _issue("carol", "--expires-days", "3")

    expiry = ApiToken.objects.get(token_key=_last_line(out)[:15]).expiry
    assert expiry is not None
    assert abs(expiry - (timezone.now() + dt.timedelta(days=3))) < dt.timedelta(minutes=1)


def test_a_token_without_expiry_never_expires(alice: Any) -> None:
    out, _ = _issue("carol")

    assert ApiToken.objects.get(token_key=_last_line(out)[:15]).expiry is None


def test_it_needs_a_username() -> None:
    with pytest.raises(CommandError):
        call_command("issue_token", stdout=io.StringIO(), stderr=io.StringIO())


def test_serve_makes_autobahns_debug_arguments_free() -> None:
    """autobahn formats the arguments of its debug lines (click styling per frame sent,
    a pretty-print per connection) before its logger sees the level is off."""
    import autobahn.websocket.protocol as protocol

    from gateway.management.commands.serve import _command_line

    frame_method = object()
    _command_line()
    assert protocol.hltype(frame_method) is frame_method
    assert protocol.hlval(42) == 42
    assert protocol.pformat({"a": 1}) == {"a": 1}
