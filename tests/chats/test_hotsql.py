"""The turn's statements written as SQL (``chats.hotsql``) do what their ORM counterparts
do. This directory runs again on PostgreSQL (``tests/scaleout/test_rest_on_postgres``),
so each check holds on both databases."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from chats import hotsql
from chats.models import Chat, Compaction, Message

pytestmark = pytest.mark.django_db

CONTENT = [{"type": "text", "text": "héllo \u2603"}, {"type": "image_url",
                                                    "image_url": {"url": "data:,x"}}]
CALLS = [{"id": "c1", "type": "function",
          "function": {"name": "bash", "arguments": "{\"command\": \"ls\"}"}}]
COMPARED = [f.attname for f in Message._meta.concrete_fields
            if f.attname not in ("id", "created_at")]


def row(message_id: int) -> dict[str, Any]:
    return Message.objects.filter(pk=message_id).values(*COMPARED, "created_at").get()


@pytest.mark.parametrize("fields", [
    {"role": "user", "content": "plain text", "status": "queued", "stream": False},
    {"role": "user", "content": CONTENT, "status": "queued"},
    {"role": "assistant", "content": None, "tool_calls": CALLS, "position": 3,
     "usage": {"prompt_tokens": 5}, "model": "m"},
    {"role": "tool", "content": "out", "tool_call_id": "c1", "tool_name": "bash",
     "is_error": True, "position": 4},
])
def test_a_message_inserted_is_the_message_the_orm_creates(alice: Any,
                                                           fields: dict) -> None:
    ours_chat, orm_chat = (Chat.objects.create(owner=alice.user) for _ in range(2))
    before = timezone.now()
    ours = row(hotsql.insert_message(ours_chat.pk, **fields))
    theirs = row(Message.objects.create(chat=orm_chat, **fields).pk)

    assert before <= ours["created_at"] <= timezone.now()
    assert ours.pop("chat_id") == ours_chat.pk and theirs.pop("chat_id") == orm_chat.pk
    ours.pop("created_at"), theirs.pop("created_at")
    assert ours == theirs


def test_a_message_with_a_field_it_does_not_have_is_refused(alice: Any) -> None:
    chat = Chat.objects.create(owner=alice.user)
    with pytest.raises(TypeError):
        hotsql.insert_message(chat.pk, role="user", colour="red")
    assert not Message.objects.filter(chat=chat).exists()


def test_touching_a_chat_titles_it_once(alice: Any) -> None:
    chat = Chat.objects.create(owner=alice.user)
    old = Chat.objects.get(pk=chat.pk).updated_at
    hotsql.touch_chat(chat.pk, "first words")
    hotsql.touch_chat(chat.pk, "second words")
    hotsql.touch_chat(chat.pk, "")
    chat.refresh_from_db()
    assert (chat.title, chat.title_auto) == ("first words", True)
    assert chat.updated_at > old
    titled = Chat.objects.create(owner=alice.user, title="Mine")
    hotsql.touch_chat(titled.pk, "words")
    titled.refresh_from_db()
    assert (titled.title, titled.title_auto) == ("Mine", False)


def test_the_lock_is_taken_once_renewed_by_its_holder_and_given_back(alice: Any) -> None:
    chat = Chat.objects.create(owner=alice.user)
    until = timezone.now() + dt.timedelta(seconds=30)
    assert hotsql.try_acquire(chat.pk, "a:1", until)
    assert not hotsql.try_acquire(chat.pk, "b:1", until)
    assert not hotsql.renew(chat.pk, "b:1", until, 9)
    assert hotsql.renew(chat.pk, "a:1", until + dt.timedelta(seconds=5), 7)
    chat.refresh_from_db()
    assert (chat.turn_owner, chat.last_seq) == ("a:1", 7)
    assert abs((chat.turn_lease_until - until).total_seconds() - 5) < 0.01
    hotsql.give_back(chat.pk, "b:1")  # not the holder: nothing happens
    assert Chat.objects.get(pk=chat.pk).turn_owner == "a:1"
    hotsql.give_back(chat.pk, "a:1")
    chat.refresh_from_db()
    assert (chat.turn_owner, chat.turn_lease_until) == (None, None)


def test_the_next_turn_is_the_oldest_queued_message_with_the_chat_it_belongs_to(
        alice: Any) -> None:
    chat = Chat.objects.create(owner=alice.user, title_auto=True,
                               allowed_tools=["bash", "read_file"])
    Message.objects.create(chat=chat, role="user", content="a", position=0)
    Message.objects.create(chat=chat, role="assistant", content="b", position=1)
    first = Message.objects.create(chat=chat, role="user", content="c", status="queued",
                                   stream=False)
    Message.objects.create(chat=chat, role="user", content="d", status="queued")
    other = Chat.objects.create(owner=alice.user)
    Message.objects.create(chat=other, role="user", content="x", status="queued")
    Message.objects.create(chat=other, role="user", content="y", position=7)
    Compaction.objects.create(chat=chat, trigger="manual", summary="old", tokens_before=1,
                              tokens_after=1, turns_removed=1)
    Compaction.objects.create(chat=chat, trigger="auto", summary="new", tokens_before=1,
                              tokens_after=1, turns_removed=1)

    nxt = hotsql.next_turn(chat.pk)
    assert (nxt.message_id, nxt.stream, nxt.next_position) == (first.pk, False, 2)
    assert (nxt.owner_id, nxt.username, nxt.profile_id) == (alice.user.pk, "alice", None)
    assert (nxt.title_auto, nxt.allowed_tools, nxt.summary) == \
        (True, ["bash", "read_file"], "new")


def test_a_chat_with_nothing_queued_has_no_next_turn_message(alice: Any) -> None:
    chat = Chat.objects.create(owner=alice.user)
    nxt = hotsql.next_turn(chat.pk)
    assert (nxt.message_id, nxt.next_position, nxt.summary, nxt.allowed_tools) == \
        (None, 0, None, [])
    Chat.objects.filter(pk=chat.pk).delete()
    assert hotsql.next_turn(chat.pk) is None


def test_taking_a_message_puts_it_into_the_conversation(alice: Any) -> None:
    chat = Chat.objects.create(owner=alice.user)
    queued = Message.objects.create(chat=chat, role="user", content="q", status="queued")
    hotsql.take_message(queued.pk, 5)
    queued.refresh_from_db()
    assert (queued.position, queued.status) == (5, "done")


def test_the_conversation_is_what_the_orm_reads_for_the_model(alice: Any) -> None:
    chat = Chat.objects.create(owner=alice.user)
    made = [
        dict(role="user", content=CONTENT, position=4),
        dict(role="assistant", content=None, tool_calls=CALLS, position=5),
        dict(role="tool", content="out", tool_call_id="c1", tool_name="bash", position=6),
        dict(role="system", content="a note", position=7),
        dict(role="user", content="old", position=1, compacted=True),
        dict(role="user", content="replaced", position=2, status="superseded"),
        dict(role="user", content="waiting", status="queued"),
        dict(role="assistant", content="done ✓", position=8),
        dict(role="user", content="first", position=0),
    ]
    for fields in made:
        Message.objects.create(chat=chat, **fields)
    Message.objects.create(chat=Chat.objects.create(owner=alice.user), role="user",
                           content="elsewhere", position=3)
    expected = [m.to_openai() for m in Message.objects.filter(
        chat=chat, compacted=False, position__isnull=False).exclude(role="system")
        .exclude(status="superseded").order_by("position")]

    got = hotsql.conversation(chat.pk)
    assert got == expected
    assert [m["content"] for m in got][:2] == ["first", CONTENT]
