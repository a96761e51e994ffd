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
    assert body["sandbox"]["enabled"] is False


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


def test_it_is_degraded_when_the_sandbox_is_enabled_but_unusable(
        anon: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agents.sandbox.sandbox_status",
                        lambda refresh=False: {"available": False, "reason": "no bwrap"})
    config = SandboxConfig.load()
    config.enabled = True
    config.save()

    body = anon.get("/health").json()

    assert body["status"] == "degraded"
    assert body["sandbox"] == {"enabled": True, "available": False, "reason": "no bwrap"}


def test_it_is_ok_when_the_enabled_sandbox_works(
        anon: APIClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agents.sandbox.sandbox_status",
                        lambda refresh=False: {"available": True, "reason": None})
    config = SandboxConfig.load()
    config.enabled = True
    config.save()

    body = anon.get("/health").json()

    assert body["status"] == "ok"
    assert body["sandbox"] == {"enabled": True, "available": True, "reason": None}


def test_it_refuses_other_methods_with_the_json_error(anon: APIClient) -> None:
    response = anon.post("/health", {}, format="json")

    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
