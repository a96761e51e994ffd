"""Revocation that bites, in one process: a socket's token or user stops being valid and
the socket closes with 4001; whatever it sends after that acts on nothing.

The attack (issue 16): after ``DELETE /api/tokens/<id>`` REST answered 401, but a socket
opened with the token kept working: it sent a message, approved a ``bash`` call, and the
call ran. The real-server and two-process versions are in ``test_sessions_serve.py`` and
``test_sessions_cluster.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from agents import events as ev
from chats.models import Message, PendingApproval
from gateway.auth import create_token
from gateway.models import ApiToken
from permissions.models import PermissionPolicy
from tests.chats.wsutil import connect, fresh_runtime, new_chat, receive_until, send  # noqa: F401
from tests.fake_upstream import Text, ToolCalls

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_runtime")]


async def closed_with(comm: Any, timeout: float = 5) -> int:
    """The close code the server sent next (events before it are skipped)."""
    while True:
        output = await comm.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return output.get("code", 1000)


@database_sync_to_async
def second_token(actor: Any, expires_in: dt.timedelta | None = None) -> tuple[ApiToken, str]:
    return create_token(actor.user, "second", expires_in)


@database_sync_to_async
def messages_of(chat: Any) -> list[Message]:
    return list(Message.objects.filter(chat=chat))


async def test_deleting_the_token_closes_its_socket_with_4001(alice: Any) -> None:
    row, token = await second_token(alice)
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, token)
    other, _ = await connect(chat.id, alice.token)  # another token of alice: stays open

    response = await asyncio.to_thread(alice.client.delete, f"/api/tokens/{row.token_key}")

    assert response.status_code == 204
    assert await closed_with(comm) == 4001
    assert await other.receive_nothing(0.3)
    await other.disconnect()


async def test_deactivating_the_user_closes_every_socket_of_it(alice: Any, bob: Any) -> None:
    chat = await new_chat(alice.user)
    first, _ = await connect(chat.id, alice.token)
    second, _ = await connect(chat.id, alice.token)
    bobs, _ = await connect((await new_chat(bob.user)).id, bob.token)

    def deactivate() -> None:
        alice.user.is_active = False
        alice.user.save()

    await database_sync_to_async(deactivate)()

    assert await closed_with(first) == 4001
    assert await closed_with(second) == 4001
    assert await bobs.receive_nothing(0.3)
    await bobs.disconnect()


async def test_deleting_the_user_closes_its_sockets(alice: Any) -> None:
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)

    await database_sync_to_async(get_user_model().objects.filter(pk=alice.user.pk).delete)()

    assert await closed_with(comm) == 4001


async def test_a_token_that_expires_closes_its_socket(alice: Any) -> None:
    _, token = await second_token(alice, dt.timedelta(seconds=1))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, token)

    assert await closed_with(comm, timeout=10) == 4001


async def test_a_frame_from_a_revoked_socket_is_not_acted_on(alice: Any, profile: Any,
                                                             upstream: Any,
                                                             settings: Any) -> None:
    """Deactivated behind the signals' back (a bulk update sends none): the socket is
    still open, but its next frame finds the token invalid, closes it, stores nothing.
    (The process's token cache, which such a change reaches only after
    GATEWAY_AUTH_CACHE_SECONDS, is off here: this is about the frame's own check.)"""
    settings.GATEWAY_AUTH_CACHE_SECONDS = 0
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await database_sync_to_async(
        get_user_model().objects.filter(pk=alice.user.pk).update)(is_active=False)

    await send(comm, {"type": "user_message", "content": "hello"})

    assert await closed_with(comm) == 4001
    assert await messages_of(chat) == []
    assert upstream.requests == []


async def test_a_pending_approval_is_not_approved_by_a_revoked_socket(
        alice: Any, profile: Any, upstream: Any, settings: Any) -> None:
    await database_sync_to_async(PermissionPolicy.objects.update_or_create)(
        pk=1, defaults={"mode": "interactive", "tool_overrides": {}})
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "echo ran > proof.txt"})]), Text("done"))
    row, token = await second_token(alice)
    chat = await new_chat(alice.user)
    approver, _ = await connect(chat.id, token)
    await send(approver, {"type": "user_message", "content": "run it"})
    await receive_until(approver, ev.TOOL_REQUEST)
    # Revoked without a signal (as a bulk delete of rows would be, by raw SQL), so only
    # the check of each frame stands between the approval and the tool (with the
    # process's token cache off: such a change reaches it after its bound).
    settings.GATEWAY_AUTH_CACHE_SECONDS = 0
    await database_sync_to_async(
        lambda: ApiToken.objects.filter(pk=row.pk)._raw_delete("default"))()

    await send(approver, {"type": "tool_approval", "verdicts": {"c1": "allow"}})

    assert await closed_with(approver) == 4001
    watcher, state = await connect(chat.id, alice.token)
    assert [c["id"] for c in state["data"]["pending_tool_calls"]] == ["c1"]
    assert await database_sync_to_async(
        PendingApproval.objects.filter(chat=chat, verdict__isnull=True).count)() == 1
    await send(watcher, {"type": "cancel"})
    await receive_until(watcher, ev.CANCELLED)
    assert not (Path(settings.GATEWAY_WORKSPACE) / "alice" / "proof.txt").exists()
    await watcher.disconnect()
