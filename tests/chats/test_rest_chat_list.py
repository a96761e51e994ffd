"""Listing chats: every chat without ``limit``, last-activity order, search over titles
and message text, bulk delete. Alice owns the chats; bob must never see them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from chats.models import Chat, Message

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


def _chat(owner: Any, title: str = "", active: dt.datetime = T0,
          messages: tuple[str, ...] = ()) -> Chat:
    chat = Chat.objects.create(owner=owner, title=title)
    for n, text in enumerate(messages):
        Message.objects.create(chat=chat, position=n, content=text,
                               role="user" if n % 2 == 0 else "assistant")
    Chat.objects.filter(pk=chat.pk).update(created_at=active, updated_at=active)
    return chat


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [c["chat_id"] for c in response.json()["chats"]]


def test_without_a_limit_more_than_a_thousand_chats_are_listed(alice: Any, bob: Any) -> None:
    Chat.objects.bulk_create([Chat(owner=alice.user, title=f"chat {n}") for n in range(1100)])
    Chat.objects.bulk_create([Chat(owner=bob.user, title="bob's") for _ in range(5)])

    body = alice.client.get("/api/chats").json()

    assert len(body["chats"]) == 1100 and body["next"] is None
    assert {c["title"] for c in body["chats"]} == {f"chat {n}" for n in range(1100)}


def test_a_new_message_moves_a_chat_to_the_top(alice: Any) -> None:
    old = _chat(alice.user, "old", T0)
    new = _chat(alice.user, "new", T0 + dt.timedelta(hours=1))
    assert _ids(alice.client.get("/api/chats")) == [str(new.pk), str(old.pk)]

    from chats.store import enqueue_and_start
    enqueue_and_start(old.pk, "back to this one", True, None, 30)

    assert _ids(alice.client.get("/api/chats")) == [str(old.pk), str(new.pk)]


def test_a_chat_is_titled_from_its_first_message(alice: Any) -> None:
    from chats.store import enqueue_and_start
    chat = alice.client.post("/api/chats", {}, format="json").json()
    enqueue_and_start(chat["chat_id"], "How do I rotate   logs\nwith logrotate?", True, None, 30)
    enqueue_and_start(chat["chat_id"], "second message", True, None, 30)

    assert alice.client.get(f"/api/chats/{chat['chat_id']}").json()["title"] == \
        "How do I rotate logs"


def test_a_long_first_message_gives_a_short_title(alice: Any) -> None:
    from chats.store import enqueue_and_start
    chat = alice.client.post("/api/chats", {}, format="json").json()
    enqueue_and_start(chat["chat_id"], "word " * 40, True, None, 30)

    title = alice.client.get(f"/api/chats/{chat['chat_id']}").json()["title"]
    assert len(title) <= 60 and title.endswith("…") and title.startswith("word word")


@pytest.mark.parametrize("query", ["kubernetes", "KUBERN", "deploy kube", "café"])
def test_search_finds_words_of_messages_in_older_chats(alice: Any, query: str) -> None:
    match = _chat(alice.user, "infra", T0, ("How do I deploy this?",
                                            "Use a Kubernetes deployment at the café."))
    _chat(alice.user, "cooking", T0 + dt.timedelta(days=3), ("Pasta?", "Boil water."))

    assert _ids(alice.client.get("/api/chats", {"q": query})) == [str(match.pk)]


def test_search_finds_titles_and_text_blocks(alice: Any) -> None:
    titled = _chat(alice.user, "Quarterly budget", T0)
    blocks = _chat(alice.user, "", T0 + dt.timedelta(hours=1))
    Message.objects.create(chat=blocks, position=0, role="user",
                           content=[{"type": "text", "text": "the quarterly report"}])

    assert set(_ids(alice.client.get("/api/chats", {"q": "quarterly"}))) == {
        str(titled.pk), str(blocks.pk)}


def test_search_follows_edits_and_deletes_of_messages(alice: Any) -> None:
    chat = _chat(alice.user, "", T0, ("a zebra appears",))
    message = chat.messages.get()
    message.content = "a giraffe appears"
    message.save()
    assert _ids(alice.client.get("/api/chats", {"q": "zebra"})) == []
    assert _ids(alice.client.get("/api/chats", {"q": "giraffe"})) == [str(chat.pk)]
    message.delete()
    assert _ids(alice.client.get("/api/chats", {"q": "giraffe"})) == []


def test_search_never_shows_another_users_chat(alice: Any, bob: Any) -> None:
    _chat(bob.user, "bob's secret", T0, ("the password is swordfish",))

    assert _ids(alice.client.get("/api/chats", {"q": "swordfish"})) == []
    assert _ids(alice.client.get("/api/chats", {"q": "secret"})) == []


@pytest.mark.parametrize("query", ['"', "title:x", "a OR b", "NEAR(a b)", "*", "-x", "'; --",
                                   "(", "^x"])
def test_query_syntax_from_a_user_is_only_words(alice: Any, query: str) -> None:
    _chat(alice.user, "x", T0, ("a b x",))

    response = alice.client.get("/api/chats", {"q": query})

    assert response.status_code == 200


def test_search_pages_like_the_listing(alice: Any) -> None:
    chats = [_chat(alice.user, f"note {n}", T0 + dt.timedelta(minutes=n)) for n in range(5)]
    first = alice.client.get("/api/chats", {"q": "note", "limit": 2}).json()
    second = alice.client.get("/api/chats", {"q": "note", "limit": 2,
                                             "cursor": first["next"]}).json()

    assert [c["chat_id"] for c in first["chats"] + second["chats"]] == \
        [str(c.pk) for c in reversed(chats)][:4]


def test_a_too_long_query_is_a_400(alice: Any) -> None:
    response = alice.client.get("/api/chats", {"q": "x" * 201})

    assert response.status_code == 400
    assert response.json()["fields"] == {"q": "At most 200 characters."}


def test_alice_deletes_several_chats_at_once(alice: Any, bob: Any) -> None:
    gone = [_chat(alice.user, f"gone {n}") for n in range(3)]
    _chat(alice.user, "kept")
    bobs = _chat(bob.user, "bob's")

    response = alice.client.post("/api/chats/bulk-delete", {
        "chat_ids": [str(c.pk) for c in gone] + [str(bobs.pk)]}, format="json")

    assert response.status_code == 200
    assert sorted(response.json()["deleted"]) == sorted(str(c.pk) for c in gone)
    assert response.json()["not_found"] == [str(bobs.pk)]
    assert set(Chat.objects.values_list("title", flat=True)) == {"kept", "bob's"}


@pytest.mark.parametrize("body, field", [({}, "chat_ids"), ({"chat_ids": []}, "chat_ids"),
                                         ({"chat_ids": ["nope"]}, "chat_ids"),
                                         ({"chat_ids": [], "x": 1}, "chat_ids")])
def test_bulk_delete_validates_the_body(alice: Any, body: dict, field: str) -> None:
    _chat(alice.user, "stays")

    response = alice.client.post("/api/chats/bulk-delete", body, format="json")

    assert response.status_code == 400 and field in response.json()["fields"]
    assert Chat.objects.count() == 1


def test_bulk_delete_needs_a_token(anon: Any) -> None:
    assert anon.post("/api/chats/bulk-delete", {"chat_ids": []}, format="json") \
        .status_code == 401


def test_a_person_may_rename_a_server_titled_chat(alice: Any) -> None:
    from chats.store import enqueue_and_start
    chat = alice.client.post("/api/chats", {}, format="json").json()
    enqueue_and_start(chat["chat_id"], "first words", True, None, 30)
    assert Chat.objects.get(pk=chat["chat_id"]).title_auto is True

    alice.client.patch(f"/api/chats/{chat['chat_id']}", {"title": "Mine"}, format="json")

    stored = Chat.objects.get(pk=chat["chat_id"])
    assert (stored.title, stored.title_auto) == ("Mine", False)
