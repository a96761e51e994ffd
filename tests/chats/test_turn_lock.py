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


def new_chat(owner: Any) -> Chat:
    return Chat.objects.create(owner=owner)


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
