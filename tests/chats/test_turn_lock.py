"""The chat's turn lock in the database: a holder whose lease ran out takes no further
message, and a holder that died between two turns leaves no "interrupted" note."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from chats import store
from chats.models import Chat, Message

pytestmark = pytest.mark.django_db


def new_chat(owner: Any, **fields: Any) -> Chat:
    return Chat.objects.create(owner=owner, **fields)


def _expire(chat: Chat) -> None:
    Chat.objects.filter(pk=chat.pk).update(
        turn_lease_until=timezone.now() - dt.timedelta(seconds=1))


def test_a_holder_whose_lease_was_settled_by_another_process_starts_nothing(
        alice: Any) -> None:
    chat = new_chat(alice.user)
    assert store.try_acquire(chat.pk, "a:1", 30)
    _expire(chat)
    assert store.settle_dead_turn(chat.pk, force=False) == "idle"
    Message.objects.create(chat=chat, role="user", content="waiting", status="queued")
    # Process a is only slow, not dead: its drain looks for the next message.
    assert store.start_next(chat.pk, "a:1", 30) is None
    assert Message.objects.get(chat=chat).status == "queued"  # for the new holder
    assert store.try_acquire(chat.pk, "b:1", 30)
    setup = store.start_next(chat.pk, "b:1", 30)
    assert setup is not None and Message.objects.get(pk=setup.message_id).status == "done"


def test_taking_a_message_renews_the_lease(alice: Any) -> None:
    chat = new_chat(alice.user)
    assert store.try_acquire(chat.pk, "a:1", 30)
    _expire(chat)
    Message.objects.create(chat=chat, role="user", content="next", status="queued")
    assert store.start_next(chat.pk, "a:1", 30) is not None
    chat.refresh_from_db()
    assert chat.turn_lease_until > timezone.now() + dt.timedelta(seconds=20)


def test_a_holder_dead_between_turns_leaves_the_history_as_it_was(alice: Any) -> None:
    chat = new_chat(alice.user)
    Message.objects.create(chat=chat, role="user", content="hi", status="done", position=0)
    Message.objects.create(chat=chat, role="assistant", content="hello", status="done",
                           position=1)
    assert store.try_acquire(chat.pk, "a:1", 30)
    _expire(chat)
    assert store.settle_dead_turn(chat.pk, force=False) == "idle"
    assert [m.content for m in Message.objects.filter(chat=chat).order_by("position")] == \
        ["hi", "hello"]
    chat.refresh_from_db()
    assert chat.turn_owner is None


def test_a_holder_dead_inside_a_turn_gets_its_turn_closed(alice: Any) -> None:
    chat = new_chat(alice.user)
    Message.objects.create(chat=chat, role="user", content="hi", status="done", position=0)
    assert store.try_acquire(chat.pk, "a:1", 30)
    assert store.settle_dead_turn(chat.pk, force=False) is None  # lease still running
    _expire(chat)
    assert store.settle_dead_turn(chat.pk, force=False) == "interrupted"
    last = Message.objects.filter(chat=chat).order_by("-position").first()
    assert last.role == "assistant" and last.status == "interrupted"


# --- the admission, done in the same database call -----------------------------------

def _start(chat: Chat) -> store.TurnSetup:
    Message.objects.create(chat=chat, role="user", content="go", status="queued")
    owner = f"p:{chat.pk.hex[:6]}"
    Chat.objects.filter(pk=chat.pk).update(turn_owner=None)
    assert store.try_acquire(chat.pk, owner, 30)
    setup = store.start_next(chat.pk, owner, 30)
    assert setup is not None
    return setup


def test_an_open_profile_without_budgets_is_admitted_without_queries_for_them(
        alice: Any, profile: Any, django_assert_num_queries: Any) -> None:
    chat = new_chat(alice.user)
    _start(chat)  # creates the policy rows, which changes the configuration's version
    _start(chat)  # the configuration is cached from here on
    Message.objects.create(chat=chat, role="user", content="again", status="queued")
    Chat.objects.filter(pk=chat.pk).update(turn_owner="p:1")
    # The transaction's savepoint and its release; the lease, the chat with its queued
    # message, position and summary (chats.hotsql), the message's save and the history:
    # none for admission.
    with django_assert_num_queries(6):
        setup = store.start_next(chat.pk, "p:1", 30)
    assert setup.refusal is None and setup.charge_id is None


def test_a_grant_made_after_the_configuration_was_cached_refuses_the_next_turn(
        alice: Any, bob: Any, profile: Any) -> None:
    from access.models import ProfileGrant

    chat = new_chat(alice.user, profile=profile)  # the chat's own profile, not a fallback
    assert _start(chat).refusal is None
    ProfileGrant.objects.create(profile=profile, user=bob.user)  # now only bob's
    refused = _start(chat).refusal
    assert refused is not None and refused.code == "profile_not_allowed"
    ProfileGrant.objects.create(profile=profile, user=alice.user)
    assert _start(chat).refusal is None


def test_a_budget_made_after_the_configuration_was_cached_is_charged_and_enforced(
        alice: Any, profile: Any) -> None:
    from usage import services
    from usage.models import Budget

    chat = new_chat(alice.user)
    assert _start(chat).charge_id is None
    Budget.objects.create(user=alice.user, period="day", limit_tokens=100)
    first = _start(chat)
    assert first.refusal is None and first.charge_id is not None
    services.record_call(user_id=alice.user.pk, chat_id=str(chat.pk), profile_name="fake",
                         model="fake-model", input_tokens=90, output_tokens=20,
                         duration_ms=5, charge_id=first.charge_id)
    services.close_turn(first.charge_id)
    refused = _start(chat).refusal
    assert refused is not None and refused.code == "budget_exceeded"


def test_the_release_tells_whether_messages_wait(alice: Any) -> None:
    chat = new_chat(alice.user)
    assert store.try_acquire(chat.pk, "a:1", 30)
    assert store.release(chat.pk, "a:1", 7) is False
    assert store.try_acquire(chat.pk, "a:2", 30)
    Message.objects.create(chat=chat, role="user", content="late", status="queued")
    assert store.release(chat.pk, "a:2", 9) is True
    chat.refresh_from_db()
    assert chat.turn_owner is None and chat.last_seq == 9


def test_the_end_of_a_turn_gives_the_lock_back_when_nothing_waits(alice: Any) -> None:
    chat = new_chat(alice.user)
    assert store.try_acquire(chat.pk, "a:1", 30)
    assert store.next_or_release(chat.pk, "a:1", 30, 12) is None
    chat.refresh_from_db()
    assert chat.turn_owner is None and chat.turn_lease_until is None and chat.last_seq == 12
    assert store.try_acquire(chat.pk, "b:1", 30)  # free for the next sender


def test_the_end_of_a_turn_starts_the_next_message_and_keeps_the_lock(alice: Any) -> None:
    chat = new_chat(alice.user)
    assert store.try_acquire(chat.pk, "a:1", 30)
    _expire(chat)  # late, but nobody settled it: still the holder's
    waiting = Message.objects.create(chat=chat, role="user", content="next", status="queued")
    setup = store.next_or_release(chat.pk, "a:1", 30, 5)
    assert setup is not None and setup.message_id == waiting.pk
    chat.refresh_from_db()
    assert chat.turn_owner == "a:1" and chat.last_seq == 5
    assert chat.turn_lease_until > timezone.now() + dt.timedelta(seconds=20)
    assert Message.objects.get(pk=waiting.pk).status == "done"


def test_the_end_of_a_turn_whose_lock_was_taken_over_changes_nothing(alice: Any) -> None:
    chat = new_chat(alice.user)
    assert store.try_acquire(chat.pk, "a:1", 30)
    _expire(chat)
    assert store.settle_dead_turn(chat.pk, force=False) == "idle"
    assert store.try_acquire(chat.pk, "b:1", 30)
    waiting = Message.objects.create(chat=chat, role="user", content="b's", status="queued")
    assert store.next_or_release(chat.pk, "a:1", 30, 99) is None
    chat.refresh_from_db()
    assert chat.turn_owner == "b:1" and chat.last_seq != 99
    assert Message.objects.get(pk=waiting.pk).status == "queued"


def test_the_history_for_the_model_is_what_each_message_says(alice: Any) -> None:
    """Read as four columns (no model instance a row): the same messages, in order, as
    ``Message.to_openai``, after the latest compaction's summary; system, superseded,
    compacted and queued messages left out."""
    from chats.models import Compaction
    from chats.store import history_for_model

    chat = new_chat(alice.user)
    calls = [{"id": "c1", "type": "function",
              "function": {"name": "bash", "arguments": "{\"command\": \"ls\"}"}}]
    kept = [
        Message.objects.create(chat=chat, position=2, role="user", content="list it"),
        Message.objects.create(chat=chat, position=3, role="assistant", content="",
                               tool_calls=calls),
        Message.objects.create(chat=chat, position=4, role="tool", content="a.txt",
                               tool_call_id="c1", tool_name="bash"),
        Message.objects.create(chat=chat, position=5, role="assistant",
                               content=[{"type": "text", "text": "one file"}]),
    ]
    Message.objects.create(chat=chat, position=0, role="user", content="old",
                           compacted=True)
    Message.objects.create(chat=chat, position=1, role="system", content="note")
    Message.objects.create(chat=chat, position=6, role="user", content="edited",
                           status="superseded")
    Message.objects.create(chat=chat, role="user", content="waiting", status="queued")
    Compaction.objects.create(chat=chat, trigger="manual", model="m", summary="earlier",
                              tokens_before=10, tokens_after=2, turns_removed=1)
    history = history_for_model(chat.pk)
    assert history[1:] == [m.to_openai() for m in kept]
    assert "earlier" in str(history[0]["content"])
    assert history[2]["tool_calls"] == calls and history[3]["tool_call_id"] == "c1"
