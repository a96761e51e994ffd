"""One check of text, whatever the door, and chats that old bad text cannot break.

The attack (issue 16): a socket ``user_message`` with a lone surrogate (``"say a\\ud800b"``)
was stored; from then on ``GET /api/chats/<id>`` answered 500 and every later turn failed
with ``upstream_error`` (UnicodeEncodeError). REST refused the same input, the socket did
not. Now a NUL or a lone surrogate anywhere in a REST body or a frame is refused (400 /
``invalid_event``) and nothing is stored; a history stored before the check is read and
sent on with U+FFFD in place of the bad characters.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async

from agents import events as ev
from chats.models import Chat, Message
from tests.chats.wsutil import connect, fresh_runtime, new_chat, receive_until, send  # noqa: F401
from tests.fake_upstream import Text

SURROGATE = '"say a\\ud800b"'  # the JSON text of a string with a lone surrogate
NUL = '"say a\\u0000b"'
BAD_FRAMES = [
    f'{{"type": "user_message", "content": {SURROGATE}}}',
    f'{{"type": "user_message", "content": {NUL}}}',
    f'{{"type": "user_message", "content": [{{"type": "text", "text": {SURROGATE}}}]}}',
    f'{{"type": "run", "data": {{"message": {NUL}}}}}',  # Clotho's form
    f'{{"type": "user_message", "content": "fine", {SURROGATE}: 1}}',  # in a key
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
@pytest.mark.parametrize("frame", BAD_FRAMES)
async def test_a_frame_with_nul_or_a_lone_surrogate_is_refused_and_nothing_stored(
        alice: Any, profile: Any, upstream: Any, frame: str) -> None:
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)

    await send(comm, frame)

    error = await comm.receive_json_from(timeout=5)
    assert error["type"] == ev.ERROR
    assert error["data"]["code"] == "invalid_event"
    assert "lone surrogates" in error["data"]["message"]
    assert await database_sync_to_async(Message.objects.filter(chat=chat).count)() == 0
    await send(comm, {"type": "user_message", "content": "and now a fine one"})
    await receive_until(comm, ev.TURN_COMPLETE)  # the socket and the chat go on
    await comm.disconnect()


@pytest.mark.django_db
@pytest.mark.parametrize("body", [
    f'{{"title": {SURROGATE}}}',
    f'{{"title": {NUL}}}',
    f'{{"title": "ok", "profile": null, {NUL}: 1}}',
])
def test_a_rest_body_with_nul_or_a_lone_surrogate_is_a_400(alice: Any, body: str) -> None:
    response = alice.client.post("/api/chats", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert not Chat.objects.exists()


@pytest.mark.django_db
def test_a_json_field_is_checked_too(admin: Any) -> None:
    """Fields that take any JSON (a policy's overrides) get the same check: NUL would be
    refused by PostgreSQL with a 500, a lone surrogate could not be sent on."""
    body = '{"mode": "interactive", "tool_overrides": {"bash": "allow", "x": "\\ud83d"}}'

    response = admin.client.put("/api/permissions", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "tool_overrides.x": "text must not contain NUL characters or lone surrogates "
                            "(invalid Unicode)"}


@database_sync_to_async
def poisoned_chat(owner: Any) -> Chat:
    """A chat whose history holds a lone surrogate, as the socket once stored it."""
    chat = Chat.objects.create(owner=owner)
    Message.objects.create(chat=chat, position=0, role="user", content="say a\ud800b",
                           status="done")
    Message.objects.create(chat=chat, position=1, role="assistant",
                           content=[{"type": "text", "text": "b\udfffc"}], status="done")
    return chat


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_a_chat_with_bad_stored_text_still_loads_and_runs(alice: Any, profile: Any,
                                                                upstream: Any) -> None:
    chat = await poisoned_chat(alice.user)

    detail = await database_sync_to_async(alice.client.get)(f"/api/chats/{chat.id}")

    assert detail.status_code == 200
    contents = [m["content"] for m in detail.json()["messages"]]
    assert contents == ["say a\ufffdb", [{"type": "text", "text": "b\ufffdc"}]]
    upstream.enqueue(Text("still here"))
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "next turn"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert [e for e in events if e["type"] == ev.ERROR] == []
    sent = json.dumps(upstream.requests[-1]["messages"], ensure_ascii=False)
    assert "say a\ufffdb" in sent and "next turn" in sent
    await comm.disconnect()
