"""The socket itself: auth, ownership, bad frames, fan-out, reconnect, queue, cancel."""

from __future__ import annotations

import json
import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from agents import events as ev
from chats.models import Message
from gateway_project.asgi import application
from permissions.models import PermissionPolicy
from tests.chats.wsutil import (
    assert_seq_contiguous,
    connect,
    fresh_runtime,  # noqa: F401
    new_chat,
    of_type,
    receive_until,
    send,
    text_of,
    wait_idle,
)
from tests.fake_upstream import Text, ToolCalls, split_words

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_runtime")]

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa"


async def closed_with(path: str) -> int:
    comm = WebsocketCommunicator(application, path)
    connected, _ = await comm.connect(timeout=5)
    assert connected  # accepted, then closed with a code
    output = await comm.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output["code"]


async def test_a_bad_or_missing_token_closes_with_4001(alice):
    chat = await new_chat(alice.user)
    assert await closed_with(f"/ws/{chat.id}?token=wrong") == 4001
    assert await closed_with(f"/ws/{chat.id}") == 4001


async def test_another_users_chat_or_an_unknown_chat_closes_with_4004(alice, bob):
    chat = await new_chat(alice.user)
    assert await closed_with(f"/ws/{chat.id}?token={bob.token}") == 4004
    assert await closed_with(f"/ws/00000000-0000-0000-0000-000000000000?token={alice.token}") \
        == 4004
    assert await closed_with(f"/ws/not-a-uuid?token={alice.token}") == 4004


async def test_the_token_may_come_in_an_authorization_header(alice):
    chat = await new_chat(alice.user)
    comm = WebsocketCommunicator(application, f"/ws/{chat.id}",
                                 headers=[(b"authorization", f"Bearer {alice.token}".encode())])
    connected, _ = await comm.connect(timeout=5)
    assert connected
    assert (await comm.receive_json_from(timeout=5))["type"] == ev.STATE
    await comm.disconnect()


BAD_FRAMES = [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    ('"text"', "JSON object"),
    ("{}", "string 'type'"),
    ('{"type": "dance"}', "unknown frame type"),
    ('{"type": "user_message"}', "'content'"),
    ('{"type": "user_message", "content": ""}', "must not be empty"),
    ('{"type": "user_message", "content": 5}', "'content'"),
    ('{"type": "user_message", "content": [{"nope": 1}]}', "content block"),
    ('{"type": "user_message", "content": "x", "stream": "yes"}', "'stream'"),
    ('{"type": "run"}', "'data'"),
    ('{"type": "tool_approval"}', "verdicts"),
    ('{"type": "tool_approval", "verdicts": {"c1": "maybe"}}', "must be one of"),
    ('{"type": "tool_approval", "verdicts": {"c1": "allow"}}', "no tool call is waiting"),
    ('{"type": "tool_approval", "verdicts": []}', "verdicts"),
]


@pytest.mark.parametrize("frame, words", BAD_FRAMES)
async def test_a_bad_frame_gets_invalid_event_and_the_socket_stays_open(
        alice, profile, upstream, frame, words):
    chat = await new_chat(alice.user)
    comm, state = await connect(chat.id, alice.token)
    await send(comm, frame)
    error = await comm.receive_json_from(timeout=5)
    assert error["type"] == ev.ERROR and error["data"]["code"] == "invalid_event"
    assert words in error["data"]["message"]
    assert error["seq"] == state["seq"]  # errors for one socket do not use up a seq
    await send(comm, {"type": "user_message", "content": "still here?"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert text_of(events) == "echo: still here?"
    await comm.disconnect()


async def test_an_oversized_frame_is_refused(alice, settings):
    settings.GATEWAY_MAX_FRAME_BYTES = 2048
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "x" * 5000})
    error = await comm.receive_json_from(timeout=5)
    assert error["data"]["code"] == "invalid_event" and "too large" in error["data"]["message"]
    count = await database_sync_to_async(Message.objects.filter(chat=chat).count)()
    assert count == 0
    await comm.disconnect()


async def test_unknown_verdict_ids_are_refused(alice, profile, upstream):
    await database_sync_to_async(PermissionPolicy.objects.update_or_create)(
        pk=1, defaults={"mode": "interactive"})
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "echo x"})]), Text("ok"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    await receive_until(comm, ev.TOOL_REQUEST)
    await send(comm, {"type": "tool_approval", "verdicts": {"zzz": "allow"}})
    error = await comm.receive_json_from(timeout=5)
    assert error["data"]["code"] == "invalid_event" and "zzz" in error["data"]["message"]
    await send(comm, {"type": "tool_approval", "verdicts": {"c1": "allow"}})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert of_type(events, ev.TOOL_RESULT)[0]["data"]["is_error"] is False
    await comm.disconnect()


async def test_two_sockets_see_every_event_and_either_may_approve(alice, profile, upstream):
    await database_sync_to_async(PermissionPolicy.objects.update_or_create)(
        pk=1, defaults={"mode": "interactive"})
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "echo both"})]), Text(WORDS))
    chat = await new_chat(alice.user)
    first, _ = await connect(chat.id, alice.token)
    second, _ = await connect(chat.id, alice.token)
    await send(first, {"type": "user_message", "content": "go"})
    before_a = await receive_until(first, ev.TOOL_REQUEST)
    before_b = await receive_until(second, ev.TOOL_REQUEST)
    await send(second, {"type": "tool_approval", "verdicts": {"c1": "allow"}})
    after_a = await receive_until(first, ev.TURN_COMPLETE)
    after_b = await receive_until(second, ev.TURN_COMPLETE)
    assert before_a + after_a == before_b + after_b
    assert_seq_contiguous(before_a + after_a)
    assert text_of(after_a) == WORDS
    await first.disconnect()
    await second.disconnect()


async def test_reconnecting_with_since_gets_the_rest_of_the_turn_without_a_gap(
        alice, profile, upstream):
    release = threading.Event()
    reply = Text(WORDS, pause_after=4, release=release)
    upstream.enqueue(reply)
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    seen = []
    while text_of(seen) != "".join(split_words(WORDS)[:4]):
        seen.append(await comm.receive_json_from(timeout=5))
    await comm.disconnect()
    # While disconnected the stream goes on and ends.
    release.set()
    await wait_idle(chat.id)
    comm, state = await connect(chat.id, alice.token, since=seen[-1]["seq"])
    assert state["data"]["replay_complete"] is True
    rest = await receive_until(comm, ev.TURN_COMPLETE)
    assert_seq_contiguous(seen + rest)
    assert text_of(seen + rest) == WORDS
    await comm.disconnect()


async def test_reconnecting_mid_turn_gets_the_partial_text_and_live_events(
        alice, profile, upstream):
    release = threading.Event()
    upstream.enqueue(Text(WORDS, pause_after=3, release=release))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    seen = []
    while text_of(seen) != "".join(split_words(WORDS)[:3]):
        seen.append(await comm.receive_json_from(timeout=5))
    await comm.disconnect()
    late, state = await connect(chat.id, alice.token)
    assert state["data"]["running"] is True
    assert state["data"]["partial_text"] == text_of(seen)
    assert state["seq"] == seen[-1]["seq"]
    release.set()
    rest = await receive_until(late, ev.TURN_COMPLETE)
    assert state["data"]["partial_text"] + text_of(rest) == WORDS
    assert rest[0]["seq"] == state["seq"] + 1
    await late.disconnect()


async def test_a_turn_finishes_when_its_socket_disconnects(alice, profile, upstream):
    release = threading.Event()
    upstream.enqueue(Text(WORDS, pause_after=2, release=release))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    await receive_until(comm, ev.TEXT_DELTA)
    await comm.disconnect()
    release.set()
    await wait_idle(chat.id)
    rows = await database_sync_to_async(list)(Message.objects.filter(chat=chat)
                                              .order_by("position"))
    assert (rows[-1].role, rows[-1].content, rows[-1].status) == ("assistant", WORDS, "done")


async def test_messages_sent_during_a_turn_are_queued_and_run_in_order(alice, profile, upstream):
    release = threading.Event()
    upstream.enqueue(Text("first", pause_after=0, release=release), Text("second"),
                     Text("third"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "one"})
    await receive_until(comm, ev.TURN_STARTED)
    await send(comm, {"type": "user_message", "content": "two"})
    await send(comm, {"type": "user_message", "content": "three"})
    queued = []
    while len(queued) < 2:
        queued += of_type([await comm.receive_json_from(timeout=5)], ev.QUEUED)
    assert [q["data"]["position"] for q in queued] == [1, 2]
    observer, state = await connect(chat.id, alice.token)
    assert state["data"]["running"] is True and state["data"]["queued"] == 2
    release.set()
    events = []
    for _ in range(3):
        events += await receive_until(comm, ev.TURN_COMPLETE)
    assert [text_of([e]) for e in of_type(events, ev.TEXT_DELTA)] == ["first", "second", "third"]
    await wait_idle(chat.id)
    rows = await database_sync_to_async(list)(Message.objects.filter(chat=chat)
                                              .order_by("position"))
    assert [(m.role, m.content) for m in rows] == [
        ("user", "one"), ("assistant", "first"), ("user", "two"), ("assistant", "second"),
        ("user", "three"), ("assistant", "third")]
    await comm.disconnect()
    await observer.disconnect()


async def test_cancel_stops_the_turn_and_leaves_a_consistent_history(alice, profile, upstream):
    await database_sync_to_async(PermissionPolicy.objects.update_or_create)(
        pk=1, defaults={"mode": "interactive"})
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "echo x"}),
                                ("c2", "read", {"path": "a"})]), Text("next turn"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    await receive_until(comm, ev.TOOL_REQUEST)
    await send(comm, {"type": "cancel"})
    events = await receive_until(comm, ev.CANCELLED)
    assert events[-1]["data"]["message"]
    await wait_idle(chat.id)
    rows = await database_sync_to_async(list)(Message.objects.filter(chat=chat)
                                              .order_by("position"))
    calls = [c["id"] for c in rows[1].tool_calls]
    results = [m.tool_call_id for m in rows if m.role == "tool"]
    assert calls == ["c1", "c2"] and sorted(results) == ["c1", "c2"]
    await send(comm, {"type": "user_message", "content": "and now?"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert text_of(events) == "next turn"
    sent = upstream.requests[-1]["messages"]
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "tool", "tool", "user"]
    await comm.disconnect()


async def test_cancel_through_rest_stops_a_streaming_turn(alice, profile, upstream):
    release = threading.Event()
    upstream.enqueue(Text(WORDS, pause_after=2, release=release))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    seen = []
    while text_of(seen) != "".join(split_words(WORDS)[:2]):
        seen.append(await comm.receive_json_from(timeout=5))

    def cancel():
        return alice.client.post(f"/api/chats/{chat.id}/cancel")

    response = await database_sync_to_async(cancel)()
    assert response.status_code == 200 and response.json() == {"cancelled": True}
    events = await receive_until(comm, ev.CANCELLED)
    release.set()
    await wait_idle(chat.id)
    last = await database_sync_to_async(
        lambda: Message.objects.filter(chat=chat).order_by("position").last())()
    assert last.status == "cancelled" and last.content == text_of(seen + events)
    await comm.disconnect()


async def test_every_event_the_code_sends_is_declared(alice, profile, upstream):
    """receive_until checks each event against agents.events; this drives most types."""
    await database_sync_to_async(PermissionPolicy.objects.update_or_create)(
        pk=1, defaults={"mode": "interactive", "tool_overrides": {"write": "deny"}})
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "echo"}),
                                ("c2", "write", {"path": "a", "content": "b"})]), Text("x"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    events = await receive_until(comm, ev.TOOL_REQUEST)
    await send(comm, {"type": "tool_approval", "verdicts": {"c1": "allow"}})
    events += await receive_until(comm, ev.TURN_COMPLETE)
    kinds = {e["type"] for e in events}
    assert {ev.QUEUED, ev.TURN_STARTED, ev.TOOL_REQUEST, ev.TOOL_DENIED, ev.TOOL_RESULT,
            ev.TEXT_DELTA, ev.TURN_COMPLETE} <= kinds
    for event in events:
        assert set(event) == {"type", "data", "seq", "timestamp"}
        json.dumps(event)
    await comm.disconnect()


async def test_a_socket_per_chat_only_sees_its_own_chat(alice, profile, upstream):
    one = await new_chat(alice.user)
    two = await new_chat(alice.user)
    comm_one, _ = await connect(one.id, alice.token)
    comm_two, _ = await connect(two.id, alice.token)
    await send(comm_one, {"type": "user_message", "content": "hi"})
    await receive_until(comm_one, ev.TURN_COMPLETE)
    assert await comm_two.receive_nothing(timeout=0.3)
    await comm_one.disconnect()
    await comm_two.disconnect()




async def test_frames_cost_no_thread_hop_to_close_connections(alice, profile, upstream,
                                                              monkeypatch):
    """Channels' ``dispatch`` runs ``aclose_old_connections()`` (a hop to asgiref's one
    shared thread) before every message a consumer gets; the chat socket skips it: its
    database work closes stale connections on its own threads (``gateway.infra.db``)."""
    import channels.consumer

    hops = []

    async def counted() -> None:
        hops.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "one"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert text_of(events) == "echo: one"
    await send(comm, "not json")
    assert (await comm.receive_json_from(timeout=5))["type"] == ev.ERROR
    await comm.disconnect()
    assert hops == []
