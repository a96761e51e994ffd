"""Agent turns over the socket: streamed and not, usage, history, upstream failures."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from agents import events as ev
from chats.models import Message
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
from tests.fake_upstream import CutStream, Hang, HttpError, MalformedSSE, Text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_runtime")]


@database_sync_to_async
def history(chat) -> list[Message]:
    return list(Message.objects.filter(chat=chat).order_by("position", "id"))


async def test_a_streamed_turn_sends_every_delta_and_the_usage(alice, profile, upstream):
    # Chunks that arrive apart are sent apart (the delay keeps them in separate reads).
    upstream.enqueue(Text("Hello there, world", chunks=["Hel", "lo there", ", world"],
                          usage=(42, 3), delay=0.05))
    chat = await new_chat(alice.user)
    comm, state = await connect(chat.id, alice.token)
    assert state["data"] == {"running": False, "queued": 0, "pending_tool_calls": [],
                             "partial_text": ""}
    await send(comm, {"type": "user_message", "content": "hi", "stream": True})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    types = [e["type"] for e in events]
    assert types == [ev.QUEUED, ev.TURN_STARTED, ev.TEXT_DELTA, ev.TEXT_DELTA, ev.TEXT_DELTA,
                     ev.TURN_COMPLETE]
    assert [e["data"]["text"] for e in of_type(events, ev.TEXT_DELTA)] == \
        ["Hel", "lo there", ", world"]
    assert events[-1]["data"] == {"stop_reason": "end_turn", "model": "fake-model",
                                  "usage": {"input_tokens": 42, "output_tokens": 3}}
    assert_seq_contiguous(events)
    assert events[0]["seq"] == state["seq"] + 1
    assert all(e["timestamp"].endswith("Z") for e in events)
    await wait_idle(chat.id)
    rows = await history(chat)
    assert [(m.role, m.content, m.status) for m in rows] == [
        ("user", "hi", "done"), ("assistant", "Hello there, world", "done")]
    assert rows[1].usage == {"input_tokens": 42, "output_tokens": 3}
    sent = upstream.requests[-1]
    assert sent["stream"] is True and sent["model"] == "fake-model"
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][-1] == {"role": "user", "content": "hi"}
    assert {t["function"]["name"] for t in sent["tools"]} == {"bash", "read", "write", "edit"}
    assert upstream.auth_headers[-1] == "Bearer sk-test-1234"
    await comm.disconnect()


async def test_a_non_streamed_turn_sends_one_text_event(alice, profile, upstream):
    upstream.enqueue(Text("Complete answer.", usage=(10, 2)))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "hi", "stream": False})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert of_type(events, ev.TEXT_DELTA) == []
    assert [e["data"] for e in of_type(events, ev.TEXT)] == [{"text": "Complete answer."}]
    assert events[-1]["data"]["usage"] == {"input_tokens": 10, "output_tokens": 2}
    assert upstream.requests[-1].get("stream") in (None, False)
    await comm.disconnect()


async def test_the_next_turn_sends_the_whole_conversation(alice, profile, upstream):
    upstream.enqueue(Text("first answer"), Text("second answer"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "one"})
    await receive_until(comm, ev.TURN_COMPLETE)
    await send(comm, {"type": "user_message", "content": "two"})
    await receive_until(comm, ev.TURN_COMPLETE)
    sent = upstream.requests[-1]["messages"][1:]
    assert sent == [{"role": "user", "content": "one"},
                    {"role": "assistant", "content": "first answer"},
                    {"role": "user", "content": "two"}]
    await comm.disconnect()


async def test_clotho_run_frames_start_a_turn(alice, profile, upstream):
    upstream.enqueue(Text("ok"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "run", "data": {"message": "hello", "stream": True}})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert text_of(events) == "ok"
    assert upstream.requests[-1]["messages"][-1] == {"role": "user", "content": "hello"}
    await comm.disconnect()


async def test_content_blocks_reach_the_model(alice, profile, upstream):
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    blocks = [{"type": "text", "text": "look at this"}]
    await send(comm, {"type": "user_message", "content": blocks})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert text_of(events) == "echo: look at this"
    assert upstream.requests[-1]["messages"][-1] == {"role": "user", "content": blocks}
    await comm.disconnect()


@pytest.mark.parametrize("reply, cause", [
    (HttpError(500), "HTTP 500"),
    (HttpError(400, {"error": {"message": "bad model", "type": "invalid_request_error"}}),
     "bad model"),
    (Hang(5), "timed out"),
    (MalformedSSE(), "fake"),
])
async def test_an_upstream_failure_ends_the_turn_with_an_error_and_the_chat_stays_usable(
        alice, profile, upstream, settings, reply, cause):
    settings.GATEWAY_UPSTREAM_TIMEOUT = 1.0
    settings.GATEWAY_UPSTREAM_RETRIES = 0
    upstream.enqueue(reply, Text("recovered"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "hi"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    errors = of_type(events, ev.ERROR)
    assert len(errors) == 1 and errors[0]["data"]["code"] == "upstream_error"
    # A sentence for people; the technical text (profile, model, cause) as the detail.
    assert errors[0]["data"]["message"].startswith("The model provider")
    message = errors[0]["data"]["detail"]
    assert "'fake'" in message and "fake-model" in message
    if cause != "fake":
        assert cause in message
    assert events[-1]["data"]["stop_reason"] == "error"
    await send(comm, {"type": "user_message", "content": "again"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert text_of(events) == "recovered"
    await comm.disconnect()


async def test_a_stream_cut_midway_keeps_the_partial_answer_marked_interrupted(
        alice, profile, upstream, settings):
    settings.GATEWAY_UPSTREAM_RETRIES = 0
    upstream.enqueue(CutStream("one two three four five six", after_chunks=3))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "hi"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert text_of(events) == "one two three "
    assert of_type(events, ev.ERROR)[0]["data"]["code"] == "upstream_error"
    await wait_idle(chat.id)
    rows = await history(chat)
    assert (rows[-1].role, rows[-1].content, rows[-1].status) == \
        ("assistant", "one two three ", "interrupted")
    await comm.disconnect()


async def test_connection_refused_is_an_upstream_error(alice, db, upstream, settings):
    from profiles.models import ModelProfile

    settings.GATEWAY_UPSTREAM_RETRIES = 0

    @database_sync_to_async
    def dead_profile():
        p = ModelProfile(name="dead", provider="ollama", model="llama3",
                         base_url="http://127.0.0.1:9/v1")
        p.save()
        p.make_default()

    await dead_profile()
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "hi"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    error = of_type(events, ev.ERROR)[0]["data"]
    assert error["code"] == "upstream_error"
    assert "'dead'" in error["detail"] and "connection" in error["detail"].lower()
    assert error["message"] == ("The model provider could not be reached. Retry, or ask an "
                                "admin to check the profile's address.")
    await comm.disconnect()


async def test_without_any_profile_the_user_is_told_how_to_create_one(alice, upstream):
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "hi"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    error = of_type(events, ev.ERROR)[0]["data"]
    assert error["code"] == "no_profile" and "POST /api/profiles" in error["message"]
    assert upstream.requests == []
    await comm.disconnect()


async def test_a_429_with_retry_after_is_retried_and_the_turn_succeeds(
        alice, profile, upstream, settings):
    settings.GATEWAY_UPSTREAM_RETRIES = 2
    upstream.enqueue(HttpError(429, headers={"Retry-After": "0"}), Text("after the retry"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "hi"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert of_type(events, ev.ERROR) == []
    assert text_of(events) == "after the retry"
    assert len(upstream.requests) == 2
    await comm.disconnect()


async def test_retries_are_bounded_and_then_the_turn_fails_clearly(
        alice, profile, upstream, settings):
    settings.GATEWAY_UPSTREAM_RETRIES = 2
    upstream.enqueue(*[HttpError(429, headers={"Retry-After": "0"}) for _ in range(3)],
                     Text("next turn works"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "hi"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    error = of_type(events, ev.ERROR)[0]["data"]
    assert error["code"] == "upstream_error" and "HTTP 429" in error["detail"]
    assert "limiting requests" in error["message"]
    assert len(upstream.requests) == 3
    await send(comm, {"type": "user_message", "content": "again"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert text_of(events) == "next turn works"
    await comm.disconnect()


async def test_chunks_that_arrive_together_are_sent_as_fewer_deltas(alice, profile, upstream):
    words = " ".join(f"w{i}" for i in range(2000))
    upstream.enqueue(Text(words))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "hi"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    deltas = of_type(events, ev.TEXT_DELTA)
    assert text_of(events) == words
    assert 1 <= len(deltas) < 2000  # coalesced per network read, nothing lost
    await comm.disconnect()


async def test_a_message_sent_as_a_turn_ends_always_gets_its_turn(alice, profile, upstream):
    """Each next message is sent when the previous turn's text or its end arrives, after
    a pause of 0 to 4 ms, so it is stored while that turn ends: before, between or after
    the drain's last look at the queue and its release. Every one must run, none twice."""
    rounds = 24
    for i in range(rounds):
        upstream.enqueue(Text(f"reply {i}", chunks=[f"reply {i}"]))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "m0"})
    sent = 1
    completes = 0
    trigger = [ev.TEXT_DELTA, ev.TURN_COMPLETE]
    while completes < rounds:
        event = await comm.receive_json_from(timeout=10)
        completes += event["type"] == ev.TURN_COMPLETE
        if sent < rounds and event["type"] == trigger[sent % 2]:
            await asyncio.sleep((sent % 5) / 1000)
            await send(comm, {"type": "user_message", "content": f"m{sent}"})
            sent += 1
    await wait_idle(chat.id)
    rows = await history(chat)
    assert [m.role for m in rows] == ["user", "assistant"] * rounds
    assert [m.content for m in rows if m.role == "user"] == [f"m{i}" for i in range(rounds)]
    assert all(m.status == "done" for m in rows)


async def test_a_message_stored_after_the_drains_last_look_is_run_by_that_drain(
        alice, profile, upstream, monkeypatch):
    """A message sent while the drain takes its last look at the queue
    (``next_or_release``), and stored just after that look gave the lock back, is not
    left waiting: its sender takes the free lock and starts it (the drain here still
    had the chat when it was sent)."""
    import threading

    from django.conf import settings

    from chats import store
    from chats.turns import get_manager

    upstream.enqueue(Text("first"), Text("second"))
    entered, go = threading.Event(), threading.Event()
    real_next = store.next_or_release
    looks: list[object] = []

    def held(*args):
        entered.set()
        go.wait(5)
        looks.append(result := real_next(*args))
        return result

    monkeypatch.setattr(store, "next_or_release", held)
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "one"})
    await receive_until(comm, ev.TURN_COMPLETE)
    assert await asyncio.to_thread(entered.wait, 5)  # the drain is in its last look
    # Sent now (as the socket does), while the drain still has the chat; SQLite's one
    # database thread stores the message after the look.
    second = asyncio.create_task(get_manager().submit(str(chat.id), "two", True))
    await asyncio.sleep(0.1)
    go.set()
    events = await receive_until(comm, ev.TURN_COMPLETE, timeout=5)
    await second
    if settings.GATEWAY_DB_THREADS == 1:  # SQLite: the message was stored after the look
        assert looks[0] is None  # which found nothing, and gave the lock back
    # (PostgreSQL's parallel threads may store it first: the look then starts it.)
    assert text_of(events) == "second"
