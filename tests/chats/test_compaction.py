"""Context accounting and compaction of chats, with the fake upstream over real HTTP:
GET /context, POST /compact, the automatic compaction before a model call, the events,
the records, the profile-switch guard and the cap on tool results.

Alice owns the chats; bob must not learn that they exist.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import Client
from django.utils import timezone

from agents import events as ev
from agents import tokens
from chats import store
from chats.models import Chat, Compaction, Message
from permissions.models import PermissionPolicy
from profiles.models import ModelProfile
from tests.chats.wsutil import (
    connect,
    fresh_runtime,  # noqa: F401
    new_chat,
    of_type,
    receive_until,
    send,
    text_of,
    wait_idle,
)
from tests.fake_upstream import HttpError, Text, ToolCalls

MODEL = "fake-model"


# --- helpers -------------------------------------------------------------------------

def seed(chat_id: Any, n: int, *, words: int = 30, usage: int | None = None,
         start: int = 0) -> list[Message]:
    """``n`` done exchanges (question i / answer i) at positions ``2*start`` on; the last
    answer carries ``usage`` as the upstream's reported input tokens."""
    rows = []
    for i in range(start, start + n):
        rows.append(Message.objects.create(chat_id=chat_id, position=2 * i, role="user",
                                           content=f"question {i} " * words))
        rows.append(Message.objects.create(chat_id=chat_id, position=2 * i + 1,
                                           role="assistant", content=f"answer {i} " * words,
                                           model=MODEL))
    if usage is not None:
        rows[-1].usage = {"input_tokens": usage, "output_tokens": 5}
        rows[-1].save(update_fields=["usage"])
    return rows


aseed = database_sync_to_async(seed)


def sent(row: Message) -> dict[str, Any]:
    return row.to_openai()


def set_window(profile: ModelProfile, window: int | None) -> None:
    profile.context_window = window
    profile.save(update_fields=["context_window"])


def new_profile(name: str, model: str = MODEL, **fields: Any) -> ModelProfile:
    profile = ModelProfile(name=name, provider="openai", model=model, **fields)
    profile.save()
    return profile


@database_sync_to_async
def compacted_flags(chat: Chat) -> list[bool]:
    return list(Message.objects.filter(chat=chat, position__isnull=False)
                .order_by("position").values_list("compacted", flat=True))


@database_sync_to_async
def compactions(chat: Chat) -> list[Compaction]:
    return list(Compaction.objects.filter(chat=chat).order_by("id"))


def cost(message: dict[str, Any]) -> int:
    return tokens.count_message(message, MODEL)


# --- automatic compaction, over the socket ---------------------------------------------

def window_around(estimate: int, fire: bool) -> int:
    """The smallest window whose 75% the estimate does not pass, or one less."""
    window = math.ceil(estimate / 0.75)
    return window - 1 if fire else window


@pytest.mark.parametrize("fire", [False, True], ids=["at_the_threshold", "past_it"])
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_automatic_compaction_fires_past_the_threshold_and_not_before(
        alice, profile, upstream, fire):
    chat = await new_chat(alice.user)
    rows = await aseed(chat.id, 5, usage=3000)
    # What the gateway must count for the next call: the reported usage of the last
    # call, plus its reply and the new message counted offline.
    estimate = 3000 + cost(sent(rows[-1])) + cost({"role": "user", "content": "next"})
    window = window_around(estimate, fire)
    await database_sync_to_async(set_window)(profile, window)
    upstream.enqueue(*([Text("SUMMARY: they asked five questions.")] if fire else []),
                     Text("the answer"))
    comm, _ = await connect(chat.id, alice.token)
    other, _ = await connect(chat.id, alice.token)

    await send(comm, {"type": "user_message", "content": "next"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    seen_by_other = await receive_until(other, ev.TURN_COMPLETE)

    assert text_of(events) == "the answer"
    if not fire:
        assert of_type(events, ev.COMPACTION_STARTED) == []
        assert of_type(events, ev.CONTEXT_COMPACTED) == []
        assert len(upstream.requests) == 1
        assert upstream.requests[0]["messages"][1:] == [
            *(sent(r) for r in rows), {"role": "user", "content": "next"}]
        assert await compacted_flags(chat) == [False] * 12
        await comm.disconnect()
        await other.disconnect()
        return

    types = [e["type"] for e in events]
    assert types[:4] == [ev.QUEUED, ev.TURN_STARTED, ev.COMPACTION_STARTED,
                         ev.CONTEXT_COMPACTED]
    started = of_type(events, ev.COMPACTION_STARTED)[0]["data"]
    done = of_type(events, ev.CONTEXT_COMPACTED)[0]["data"]
    assert started == {"tokens_before": estimate, "context_window": window}
    assert done["tokens_before"] == estimate
    assert 0 < done["tokens_after"] < done["tokens_before"]
    assert done["turns_removed"] == 2
    # Every socket of the chat saw both events, with the same numbers.
    assert [e["data"] for e in seen_by_other if e["type"] in
            (ev.COMPACTION_STARTED, ev.CONTEXT_COMPACTED)] == [started, done]

    # One summary call (not streamed, no tools) of the two oldest exchanges ...
    summary_call, answer_call = upstream.requests
    assert not summary_call.get("stream") and "tools" not in summary_call
    assert "words" in summary_call["messages"][0]["content"]
    transcript = summary_call["messages"][-1]["content"]
    assert "question 0" in transcript and "answer 1" in transcript
    assert "question 2" not in transcript
    # ... then the model gets the summary in their place and the last four exchanges
    # (three stored and the new one) verbatim.
    messages = answer_call["messages"]
    assert messages[0]["role"] == "system" and "agent" in messages[0]["content"]
    assert messages[1]["role"] == "system"
    assert messages[1]["content"].endswith("SUMMARY: they asked five questions.")
    assert messages[2:] == [*(sent(r) for r in rows[4:]),
                            {"role": "user", "content": "next"}]

    await wait_idle(chat.id)
    assert await compacted_flags(chat) == [True] * 4 + [False] * 8
    [record] = await compactions(chat)
    assert (record.trigger, record.turns_removed, record.tokens_before, record.tokens_after) \
        == ("auto", 2, estimate, done["tokens_after"])
    assert record.message_ids == [r.id for r in rows[:4]]
    assert record.summary == "SUMMARY: they asked five questions."

    # The next turn sends the summary, not the compacted messages, and does not compact
    # again (the context is small now).
    upstream.enqueue(Text("again"))
    await send(comm, {"type": "user_message", "content": "and then?"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert of_type(events, ev.COMPACTION_STARTED) == []
    messages = upstream.requests[-1]["messages"]
    assert messages[1]["content"].endswith("SUMMARY: they asked five questions.")
    assert not any("question 0" in str(m["content"]) for m in messages)
    assert messages[-3:] == [{"role": "user", "content": "next"},
                             {"role": "assistant", "content": "the answer"},
                             {"role": "user", "content": "and then?"}]
    await comm.disconnect()
    await other.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_four_exchanges_are_never_compacted_however_full(alice, profile, upstream):
    chat = await new_chat(alice.user)
    await aseed(chat.id, 3, usage=100_000)
    await database_sync_to_async(set_window)(profile, 1000)
    comm, _ = await connect(chat.id, alice.token)

    await send(comm, {"type": "user_message", "content": "next"})
    events = await receive_until(comm, ev.TURN_COMPLETE)

    assert of_type(events, ev.COMPACTION_STARTED) == []
    assert len(upstream.requests) == 1
    assert await compactions(chat) == []
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_a_failed_summary_is_reported_and_the_turn_goes_on_uncompacted(
        alice, profile, upstream, settings):
    settings.GATEWAY_UPSTREAM_RETRIES = 0
    chat = await new_chat(alice.user)
    rows = await aseed(chat.id, 6, usage=50_000)
    await database_sync_to_async(set_window)(profile, 8000)
    upstream.enqueue(HttpError(500), Text("still here"))
    comm, _ = await connect(chat.id, alice.token)

    await send(comm, {"type": "user_message", "content": "next"})
    events = await receive_until(comm, ev.TURN_COMPLETE)

    assert [e["type"] for e in events][2:4] == [ev.COMPACTION_STARTED, ev.ERROR]
    error = of_type(events, ev.ERROR)[0]["data"]
    assert error["code"] == "compaction_failed" and "HTTP 500" in error["message"]
    assert of_type(events, ev.CONTEXT_COMPACTED) == []
    assert text_of(events) == "still here"
    assert events[-1]["data"]["stop_reason"] == "end_turn"
    assert upstream.requests[-1]["messages"][1:] == [*(sent(r) for r in rows),
                                                     {"role": "user", "content": "next"}]
    await wait_idle(chat.id)
    assert not any(await compacted_flags(chat))
    assert await compactions(chat) == []
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_a_failed_summary_is_tried_once_per_turn(alice, profile, upstream, settings):
    settings.GATEWAY_UPSTREAM_RETRIES = 0
    await database_sync_to_async(PermissionPolicy.objects.update_or_create)(
        pk=1, defaults={"mode": "autonomous", "tool_overrides": {}})
    chat = await new_chat(alice.user)
    await aseed(chat.id, 6, usage=50_000)
    await database_sync_to_async(set_window)(profile, 8000)
    upstream.enqueue(HttpError(500), ToolCalls([("c1", "bash", {"command": "echo hi"})]),
                     Text("done"))
    comm, _ = await connect(chat.id, alice.token)

    await send(comm, {"type": "user_message", "content": "next"})
    events = await receive_until(comm, ev.TURN_COMPLETE)

    assert len(of_type(events, ev.COMPACTION_STARTED)) == 1
    assert len(upstream.requests) == 3  # one summary attempt, two model calls
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_a_tool_result_too_large_for_the_window_is_cut_with_a_note(
        alice, profile, upstream):
    await database_sync_to_async(PermissionPolicy.objects.update_or_create)(
        pk=1, defaults={"mode": "autonomous", "tool_overrides": {}})
    await database_sync_to_async(set_window)(profile, 4000)
    command = "python3 -c \"print('word ' * 6000)\""
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": command})]), Text("read it"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)

    await send(comm, {"type": "user_message", "content": "print a lot"})
    events = await receive_until(comm, ev.TURN_COMPLETE)

    assert text_of(events) == "read it"
    result = upstream.requests[-1]["messages"][-1]
    assert result["role"] == "tool" and result["tool_call_id"] == "c1"
    assert result["content"].startswith("word word")
    assert "tool output truncated by the gateway" in result["content"]
    assert tokens.count_text(result["content"], MODEL) <= 1000  # a quarter of the window
    await wait_idle(chat.id)
    stored = await database_sync_to_async(Message.objects.get)(chat=chat, role="tool")
    assert stored.content.count("word") == 6000  # the full output is kept
    await comm.disconnect()


# --- manual compaction over REST --------------------------------------------------------

def _compact(actor: Any, chat_id: Any) -> Any:
    return actor.client.post(f"/api/chats/{chat_id}/compact")


def _context(actor: Any, chat_id: Any) -> dict[str, Any]:
    response = actor.client.get(f"/api/chats/{chat_id}/context")
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
def test_manual_compaction_summarises_all_but_the_last_four_exchanges(alice, profile,
                                                                      upstream):
    chat = Chat.objects.create(owner=alice.user)
    rows = seed(chat.id, 7)
    upstream.enqueue(Text("They asked seven questions."))
    before = _context(alice, chat.id)["current_tokens"]

    response = _compact(alice, chat.id)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"tokens_before", "tokens_after", "turns_removed"}
    assert body["turns_removed"] == 3
    assert body["tokens_before"] == before
    assert body["tokens_after"] == _context(alice, chat.id)["current_tokens"] < before
    detail = alice.client.get(f"/api/chats/{chat.id}").json()
    assert [m["compacted"] for m in detail["messages"]] == [True] * 6 + [False] * 8
    [record] = detail["compactions"]
    assert record["trigger"] == "manual"
    assert record["summary"] == "They asked seven questions."
    assert record["message_ids"] == [r.id for r in rows[:6]]
    assert record["positions"] == [0, 5]
    assert record["model"] == MODEL
    assert {k: record[k] for k in body} == body
    assert set(record) == {"id", "created_at", "trigger", "model", "summary", "message_ids",
                           "positions", "tokens_before", "tokens_after", "turns_removed"}


@pytest.mark.django_db
def test_a_summary_longer_than_its_budget_is_cut(alice, profile, upstream):
    chat = Chat.objects.create(owner=alice.user)
    seed(chat.id, 6)
    upstream.enqueue(Text("blah " * 5000))

    body = _compact(alice, chat.id).json()

    summary = Compaction.objects.get().summary
    assert summary.startswith("blah blah") and summary.endswith("[... summary cut]")
    assert tokens.count_text(summary, MODEL) <= 8192 // 10
    assert body["tokens_after"] < body["tokens_before"]


@pytest.mark.django_db
def test_a_second_compaction_summarises_the_first_summary_too(alice, profile, upstream):
    chat = Chat.objects.create(owner=alice.user)
    seed(chat.id, 6)
    upstream.enqueue(Text("FIRST SUMMARY"), Text("SECOND SUMMARY"))
    assert _compact(alice, chat.id).status_code == 200
    seed(chat.id, 2, start=6)

    response = _compact(alice, chat.id)

    assert response.json()["turns_removed"] == 2
    transcript = upstream.requests[-1]["messages"][-1]["content"]
    assert "FIRST SUMMARY" in transcript and "question 2 " in transcript
    assert "question 0 " not in transcript
    history = store.history_for_model(chat.id)
    assert history[0]["content"].endswith("SECOND SUMMARY")
    assert not any("FIRST SUMMARY" in str(m["content"]) for m in history)
    assert [m["content"] for m in history[1::2]] == [f"question {i} " * 30
                                                     for i in range(4, 8)]
    assert len(alice.client.get(f"/api/chats/{chat.id}").json()["compactions"]) == 2


@pytest.mark.django_db
def test_compacting_with_four_exchanges_is_not_enough_history(alice, profile, upstream):
    chat = Chat.objects.create(owner=alice.user)
    seed(chat.id, 4)

    response = _compact(alice, chat.id)

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "not_enough_history"
    assert "4 exchange(s)" in body["message"] and "at least 5" in body["message"]
    assert upstream.requests == []
    assert not Message.objects.filter(chat=chat, compacted=True).exists()


@pytest.mark.django_db
def test_compacting_while_a_turn_runs_is_refused(alice, profile, upstream):
    chat = Chat.objects.create(owner=alice.user, turn_owner="elsewhere",
                               turn_lease_until=timezone.now() + dt.timedelta(seconds=30))
    seed(chat.id, 6)

    response = _compact(alice, chat.id)

    assert response.status_code == 409
    assert response.json()["error"] == "turn_running"
    assert upstream.requests == []


@pytest.mark.django_db
def test_a_failed_summary_compacts_nothing(alice, profile, upstream, settings):
    settings.GATEWAY_UPSTREAM_RETRIES = 0
    chat = Chat.objects.create(owner=alice.user)
    seed(chat.id, 6)
    upstream.enqueue(HttpError(500))

    response = _compact(alice, chat.id)

    assert response.status_code == 502
    assert response.json()["error"] == "compaction_failed"
    assert "HTTP 500" in response.json()["message"]
    assert not Message.objects.filter(chat=chat, compacted=True).exists()
    assert not Compaction.objects.exists()


@pytest.mark.django_db
def test_compacting_without_any_profile_says_how_to_get_one(alice, upstream):
    chat = Chat.objects.create(owner=alice.user)
    seed(chat.id, 6)

    response = _compact(alice, chat.id)

    assert response.status_code == 400
    assert response.json()["error"] == "no_profile"
    assert "POST /api/profiles" in response.json()["message"]


@pytest.mark.django_db
def test_bob_cannot_compact_or_read_alices_context(alice, bob, profile, upstream):
    chat = Chat.objects.create(owner=alice.user)
    seed(chat.id, 6)

    assert _compact(bob, chat.id).status_code == 404
    assert bob.client.get(f"/api/chats/{chat.id}/context").status_code == 404
    assert upstream.requests == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_a_manual_compaction_is_announced_on_the_chats_sockets(alice, profile, upstream):
    chat = await new_chat(alice.user)
    await aseed(chat.id, 6)
    upstream.enqueue(Text("short summary"))
    comm, _ = await connect(chat.id, alice.token)

    response = await database_sync_to_async(_compact)(alice, chat.id)

    assert response.status_code == 200
    body = response.json()
    events = await receive_until(comm, ev.CONTEXT_COMPACTED)
    assert [e["type"] for e in events] == [ev.COMPACTION_STARTED, ev.CONTEXT_COMPACTED]
    assert events[0]["data"]["tokens_before"] == body["tokens_before"]
    assert events[0]["data"]["context_window"] == tokens.DEFAULT_CONTEXT_WINDOW
    assert events[1]["data"] == body
    assert events[1]["seq"] == events[0]["seq"] + 1
    await comm.disconnect()


# --- context accounting -----------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("model, configured, expected", [
    ("my-local-model", None, tokens.DEFAULT_CONTEXT_WINDOW),  # the stated default
    ("gpt-4o", None, 128_000),                                # the registry
    ("gpt-4o", 16_000, 16_000),                               # the profile wins
    ("llama3.1:8b", 4096, 4096),
])
def test_the_window_is_the_profiles_else_the_registrys_else_the_default(
        alice, model, configured, expected):
    new_profile("p", model=model, context_window=configured).make_default()
    chat = Chat.objects.create(owner=alice.user)

    body = _context(alice, chat.id)

    assert body["context_window"] == expected
    assert body["compaction_threshold"] == 0.75


@pytest.mark.django_db
def test_the_context_counts_the_system_prompt_and_tools_offline_without_usage(
        alice, profile, monkeypatch):
    import socket

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("counting tried to reach the network")

    chat = Chat.objects.create(owner=alice.user)
    empty = _context(alice, chat.id)["current_tokens"]
    rows = seed(chat.id, 2)
    monkeypatch.setattr(socket.socket, "connect", refuse)

    body = _context(alice, chat.id)

    assert empty > 100  # the system prompt and the tool schemas are part of every call
    assert body["current_tokens"] == empty + sum(cost(sent(r)) for r in rows)
    assert body["percent_used"] == round(100 * body["current_tokens"] / 8192, 2)


@pytest.mark.django_db
def test_the_last_reported_usage_is_the_truth_plus_what_came_after(alice, profile):
    chat = Chat.objects.create(owner=alice.user)
    rows = seed(chat.id, 3, usage=4321)
    tool_call = Message.objects.create(chat=chat, position=6, role="user", content="more")

    body = _context(alice, chat.id)

    assert body["current_tokens"] == 4321 + cost(sent(rows[-1])) + cost(sent(tool_call))


@pytest.mark.django_db
def test_a_usage_reported_by_another_model_is_not_trusted(alice, profile):
    chat = Chat.objects.create(owner=alice.user)
    seed(chat.id, 3, usage=4321)
    Message.objects.filter(chat=chat, role="assistant").update(model="llama3")

    assert _context(alice, chat.id)["current_tokens"] < 4321


@pytest.mark.django_db
def test_a_usage_from_before_a_compaction_is_not_trusted(alice, profile, upstream):
    chat = Chat.objects.create(owner=alice.user)
    seed(chat.id, 6, usage=6000)
    upstream.enqueue(Text("summary"))

    body = _compact(alice, chat.id).json()

    assert _context(alice, chat.id)["current_tokens"] == body["tokens_after"] < 6000


# --- switching profile ------------------------------------------------------------------

@pytest.mark.django_db
def test_switching_to_a_window_the_context_does_not_fit_says_to_compact_first(
        alice, profile):
    new_profile("tiny", context_window=1000)
    chat = Chat.objects.create(owner=alice.user, profile=profile)
    seed(chat.id, 6, words=40)
    used = _context(alice, chat.id)["current_tokens"]

    response = alice.client.put(f"/api/chats/{chat.id}/profile", {"name": "tiny"},
                                format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "context_too_large"
    assert str(used) in body["message"] and "1000" in body["message"]
    assert f"POST /api/chats/{chat.id}/compact" in body["message"]
    chat.refresh_from_db()
    assert chat.profile == profile


@pytest.mark.django_db
def test_switching_to_a_window_the_context_fits_works(alice, profile):
    new_profile("roomy", context_window=100_000)
    chat = Chat.objects.create(owner=alice.user, profile=profile)
    seed(chat.id, 6, words=40)

    response = alice.client.put(f"/api/chats/{chat.id}/profile", {"name": "roomy"},
                                format="json")

    assert response.status_code == 200
    assert response.json() == {"profile_name": "roomy"}
    assert _context(alice, chat.id)["context_window"] == 100_000


# --- admin --------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_admin_shows_the_compaction_records(alice, admin, profile, upstream):
    chat = Chat.objects.create(owner=alice.user, title="long one")
    seed(chat.id, 6)
    upstream.enqueue(Text("An admin can read this summary."))
    assert _compact(alice, chat.id).status_code == 200
    browser = Client()
    browser.force_login(admin.user)

    listing = browser.get("/admin/chats/compaction/")
    record = Compaction.objects.get()
    detail = browser.get(f"/admin/chats/compaction/{record.pk}/change/")
    chat_page = browser.get(f"/admin/chats/chat/{chat.pk}/change/")

    assert listing.status_code == 200 and "long one" in listing.content.decode()
    assert detail.status_code == 200
    assert "An admin can read this summary." in detail.content.decode()
    assert "An admin can read this summary." in chat_page.content.decode()
    assert browser.get("/admin/chats/compaction/add/").status_code == 403

