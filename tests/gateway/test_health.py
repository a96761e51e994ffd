"""GET /health: public, JSON, and honest about running turns and the sandbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from chats.models import Chat
from permissions.models import SandboxConfig

pytestmark = pytest.mark.django_db


def _chat_with_turn(owner: Any, lease: dt.timedelta) -> Chat:
    """A chat whose turn lock is held until ``now + lease`` (negative: a dead holder)."""
    chat = Chat.objects.create(owner=owner)
    Chat.objects.filter(pk=chat.pk).update(turn_owner="host:1:abcd",
                                           turn_lease_until=timezone.now() + lease)
    return chat


def test_it_answers_without_a_token(anon: APIClient) -> None:
    response = anon.get("/health")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"status", "version", "active_turns", "sandbox"}
    assert body["status"] == "ok"
    assert body["version"] == settings.VERSION
    assert body["active_turns"] == 0
    assert body["sandbox"]["enabled"] is True  # sandboxed by default, with no configuration
    assert body["sandbox"]["tools"] in ("sandboxed", "unavailable")


def test_it_ignores_a_wrong_token(anon: APIClient) -> None:
    anon.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")

    response = anon.get("/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_it_counts_turns_whose_lease_holds(alice: Any) -> None:
    _chat_with_turn(alice.user, dt.timedelta(seconds=30))
    _chat_with_turn(alice.user, dt.timedelta(seconds=30))
    _chat_with_turn(alice.user, dt.timedelta(seconds=-30))  # its process died
    Chat.objects.create(owner=alice.user)  # idle

    assert APIClient().get("/health").json()["active_turns"] == 2


def test_it_is_degraded_when_the_sandbox_is_unusable(
        anon: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agents.sandbox.sandbox_status",
                        lambda refresh=False: {"available": False, "reason": "no bwrap"})

    body = anon.get("/health").json()

    assert body["status"] == "degraded"
    assert body["sandbox"] == {"tools": "unavailable", "enabled": True, "available": False,
                               "reason": "no bwrap", "network": False}


def test_it_is_ok_when_the_enabled_sandbox_works(
        anon: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agents.sandbox.sandbox_status",
                        lambda refresh=False: {"available": True, "reason": None})
    config = SandboxConfig.load()
    config.enabled = True
    config.save()

    body = anon.get("/health").json()

    assert body["status"] == "ok"
    assert body["sandbox"] == {"tools": "sandboxed", "enabled": True, "available": True,
                               "reason": None, "network": False}


def test_the_config_alone_cannot_turn_the_sandbox_off(
        anon: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agents.sandbox.sandbox_status",
                        lambda refresh=False: {"available": True, "reason": None})
    SandboxConfig.objects.update_or_create(pk=1, defaults={"enabled": False})

    assert anon.get("/health").json()["sandbox"]["tools"] == "sandboxed"


def test_it_says_when_the_operator_let_tools_run_unconfined(
        anon: APIClient, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agents.sandbox.sandbox_status",
                        lambda refresh=False: {"available": False, "reason": "no bwrap"})
    settings.GATEWAY_UNSANDBOXED_TOOLS = True

    body = anon.get("/health").json()

    assert body["status"] == "ok"  # nothing is broken: the operator chose this
    assert body["sandbox"]["tools"] == "unsandboxed"
    assert body["sandbox"]["enabled"] is False


def test_it_refuses_other_methods_with_the_json_error(anon: APIClient) -> None:
    response = anon.post("/health", {}, format="json")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
