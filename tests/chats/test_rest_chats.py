"""REST endpoints of chats: /api/chats, /api/chats/{id}/..., /api/panic.

Alice owns the chats; bob is another member and must never learn that they exist.
"""

from __future__ import annotations

import base64
import queue
import datetime as dt
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone
from rest_framework.test import APIClient

from chats.turns import get_manager
from chats.models import Chat, Message
from profiles.models import ModelProfile

pytestmark = pytest.mark.django_db

CHAT_KEYS = {"chat_id", "title", "profile", "created_at", "updated_at"}
NO_SUCH_CHAT = {"error": "not_found", "message": "No such chat."}
T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


# --- helpers -------------------------------------------------------------------------

def _create(actor: Any, **body: Any) -> dict:
    response = actor.client.post("/api/chats", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _chat_at(owner: Any, created_at: dt.datetime, title: str = "") -> Chat:
    """A chat created (and last active) at a fixed moment, so the order of a listing is
    known."""
    chat = Chat.objects.create(owner=owner, title=title)
    Chat.objects.filter(pk=chat.pk).update(created_at=created_at, updated_at=created_at)
    chat.refresh_from_db()
    return chat


def _seed(chat_id: str | uuid.UUID, *pairs: tuple[str, str]) -> list[Message]:
    """Done messages at positions 0, 1, ... (role, content)."""
    return [Message.objects.create(chat_id=chat_id, position=i, role=role, content=content)
            for i, (role, content) in enumerate(pairs)]


def _hold_turn(chat_id: str, seconds: float = 30) -> None:
    """Mark the chat as running a turn (the lock a turn runner takes)."""
    Chat.objects.filter(pk=chat_id).update(
        turn_owner="host:1:abcd", turn_lease_until=timezone.now() + dt.timedelta(seconds=seconds))


def _profile(name: str, **fields: Any) -> ModelProfile:
    profile = ModelProfile(name=name, provider="openai", model=fields.pop("model", "gpt-4o"),
                           **fields)
    profile.save()
    return profile


def _walk(actor: Any, limit: int) -> list[list[str]]:
    """Every page of the listing, as lists of chat ids."""
    pages, cursor = [], None
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = actor.client.get(f"/api/chats{query}")
        assert response.status_code == 200
        body = response.json()
        pages.append([c["chat_id"] for c in body["chats"]])
        cursor = body["next"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor does not advance"


class ControlListener:
    """Stands in for the turn runner: the inbox of a chat's controls on this process's
    event hub, as a running turn's ``ControlChannel`` is."""

    def __init__(self, chat_id: str) -> None:
        self.chat_id = chat_id
        self.got: "queue.Queue[dict]" = queue.Queue()
        self.hub = get_manager().hub
        async_to_sync(self.hub.watch_control)(chat_id, self)

    def deliver(self, message: dict) -> None:
        self.got.put(message)

    def receive(self, timeout: float = 2) -> dict:
        return self.got.get(timeout=timeout)

    def close(self) -> None:
        self.hub.unwatch_control(self.chat_id, self)


# --- create --------------------------------------------------------------------------

def test_alice_creates_a_chat_without_a_body(alice: Any) -> None:
    response = alice.client.post("/api/chats")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == CHAT_KEYS
    assert uuid.UUID(body["chat_id"])
    assert body["title"] == ""
    assert body["profile"] is None
    assert dt.datetime.fromisoformat(body["created_at"]) <= timezone.now()
    assert dt.datetime.fromisoformat(body["updated_at"]) >= \
        dt.datetime.fromisoformat(body["created_at"])
    chat = Chat.objects.get(pk=body["chat_id"])
    assert chat.owner == alice.user


def test_alice_creates_a_chat_with_a_title_and_a_profile(alice: Any, profile: Any) -> None:
    body = _create(alice, title="Refactor", profile="fake")

    assert body["title"] == "Refactor"
    assert body["profile"] == "fake"
    assert Chat.objects.get(pk=body["chat_id"]).profile == profile


def test_a_chat_created_with_a_null_profile_has_none(alice: Any, profile: Any) -> None:
    assert _create(alice, profile=None)["profile"] is None


def test_creating_a_chat_with_an_unknown_profile_is_a_400_with_fields(alice: Any) -> None:
    response = alice.client.post("/api/chats", {"profile": "nope"}, format="json")

    assert response.status_code == 400
    message = "No profile named 'nope'; GET /api/profiles lists them."
    assert response.json() == {"error": "unknown_profile", "message": message,
                               "fields": {"profile": message}}
    assert not Chat.objects.exists()


@pytest.mark.parametrize("payload, field", [
    ({"title": "x" * 201}, "title"),
    ({"title": None}, "title"),
    ({"topic": "x"}, "topic"),
])
def test_creating_a_chat_validates_the_body(alice: Any, payload: dict, field: str) -> None:
    response = alice.client.post("/api/chats", payload, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert set(response.json()["fields"]) == {field}
    assert not Chat.objects.exists()


@pytest.mark.parametrize("payload", ["[]", "[1]", '"title"', "7"])
def test_creating_a_chat_needs_a_json_object(alice: Any, payload: str) -> None:
    response = alice.client.post("/api/chats", payload, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["fields"] == {"body": "Send a JSON object."}
    assert not Chat.objects.exists()


# --- list ----------------------------------------------------------------------------

def test_alice_lists_her_chats_most_recently_active_first(alice: Any) -> None:
    older = _chat_at(alice.user, T0, "older")
    newest = _chat_at(alice.user, T0 + dt.timedelta(hours=2), "newest")
    middle = _chat_at(alice.user, T0 + dt.timedelta(hours=1), "middle")

    response = alice.client.get("/api/chats")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"chats", "next"}
    assert [c["chat_id"] for c in body["chats"]] == [str(newest.pk), str(middle.pk),
                                                     str(older.pk)]
    assert body["chats"][0] == newest.to_dict()
    assert body["next"] is None


def test_alice_lists_her_own_chats_only(alice: Any, bob: Any) -> None:
    mine = _create(alice, title="mine")
    _create(bob, title="bob's")

    chats = alice.client.get("/api/chats").json()["chats"]

    assert [c["chat_id"] for c in chats] == [mine["chat_id"]]


def test_the_listing_shows_the_profile_of_each_chat(alice: Any, profile: Any) -> None:
    _create(alice, profile="fake")

    assert alice.client.get("/api/chats").json()["chats"][0]["profile"] == "fake"


def test_without_a_limit_every_chat_is_listed(alice: Any) -> None:
    for minute in range(125):
        _chat_at(alice.user, T0 + dt.timedelta(minutes=minute))

    body = alice.client.get("/api/chats").json()

    assert len(body["chats"]) == 125
    assert body["next"] is None


def test_the_cursor_leads_to_the_next_page(alice: Any) -> None:
    chats = [_chat_at(alice.user, T0 + dt.timedelta(minutes=m)) for m in range(5)]
    newest_first = [str(c.pk) for c in reversed(chats)]

    first = alice.client.get("/api/chats?limit=2").json()
    second = alice.client.get(f"/api/chats?limit=2&cursor={first['next']}").json()

    assert [c["chat_id"] for c in first["chats"]] == newest_first[:2]
    assert [c["chat_id"] for c in second["chats"]] == newest_first[2:4]
    assert second["next"] not in (None, first["next"])


def test_walking_all_pages_returns_every_chat_exactly_once(alice: Any, bob: Any) -> None:
    # Some chats share a creation time: the id breaks the tie, so none is lost or repeated.
    times = [0, 1, 1, 1, 2, 3, 3, 4, 5, 5, 5, 5, 6]
    chats = [_chat_at(alice.user, T0 + dt.timedelta(seconds=s)) for s in times]
    _chat_at(bob.user, T0 + dt.timedelta(seconds=3))
    expected = [str(c.pk) for c in sorted(chats, key=lambda c: (times[chats.index(c)],
                                                                c.pk.hex), reverse=True)]

    for limit in (1, 2, 3, 5, 13, 100):
        pages = _walk(alice, limit)
        flat = [chat_id for page in pages for chat_id in page]
        assert flat == expected, f"limit={limit}"
        assert all(len(page) == limit for page in pages[:-1])
        assert 1 <= len(pages[-1]) <= limit


def test_the_last_full_page_has_no_next(alice: Any) -> None:
    for minute in range(4):
        _chat_at(alice.user, T0 + dt.timedelta(minutes=minute))

    assert [len(page) for page in _walk(alice, 2)] == [2, 2]


def test_a_chat_created_while_paging_does_not_disturb_older_pages(alice: Any) -> None:
    chats = [_chat_at(alice.user, T0 + dt.timedelta(minutes=m)) for m in range(4)]
    first = alice.client.get("/api/chats?limit=2").json()
    _create(alice, title="brand new")

    second = alice.client.get(f"/api/chats?limit=2&cursor={first['next']}").json()

    assert [c["chat_id"] for c in second["chats"]] == [str(chats[1].pk), str(chats[0].pk)]
    assert second["next"] is None


def test_an_empty_listing(alice: Any) -> None:
    assert alice.client.get("/api/chats").json() == {"chats": [], "next": None}


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "", "2.5"])
def test_a_bad_limit_is_a_400(alice: Any, limit: str) -> None:
    response = alice.client.get(f"/api/chats?limit={limit}")

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request",
                               "message": "limit must be between 1 and 100.",
                               "fields": {"limit": "Between 1 and 100."}}


@pytest.mark.parametrize("limit", ["1", "100"])
def test_the_limit_bounds_are_allowed(alice: Any, limit: str) -> None:
    assert alice.client.get(f"/api/chats?limit={limit}").status_code == 200


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "garbage!",
    _b64(b"no separator"),
    _b64(b"yesterday|" + str(uuid.UUID(int=7)).encode()),
    _b64(b"2026-01-01T00:00:00+00:00|not-a-uuid"),
    _b64(b"a|b|c"),
    _b64(b"\xff\xfe|\xfd"),
])
def test_a_bad_cursor_is_a_400(alice: Any, cursor: str) -> None:
    response = alice.client.get(f"/api/chats?cursor={cursor}")

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_cursor",
                               "message": "The cursor is not one this API returned.",
                               "fields": {"cursor": "Invalid cursor."}}


# --- get -----------------------------------------------------------------------------

def test_alice_gets_her_chat_with_its_messages(alice: Any) -> None:
    chat = _create(alice, title="hello")
    _seed(chat["chat_id"], ("user", "hi"), ("assistant", "hello!"))

    response = alice.client.get(f"/api/chats/{chat['chat_id']}")

    assert response.status_code == 200
    body = response.json()
    # The chat, plus its history (further keys, such as compactions, may come along).
    assert set(body) >= CHAT_KEYS | {"messages", "queued", "running"}
    assert {k: body[k] for k in CHAT_KEYS} == chat
    assert [(m["position"], m["role"], m["content"]) for m in body["messages"]] == [
        (0, "user", "hi"), (1, "assistant", "hello!")]
    assert set(body["messages"][0]) == {"id", "position", "role", "content", "status",
                                        "compacted", "current", "created_at"}
    assert body["messages"][0]["status"] == "done"
    assert body["messages"][0]["compacted"] is False
    assert body["queued"] == []
    assert body["running"] is False


def test_a_new_chat_has_no_messages(alice: Any) -> None:
    chat = _create(alice)

    body = alice.client.get(f"/api/chats/{chat['chat_id']}").json()

    assert body["messages"] == [] and body["queued"] == [] and body["running"] is False


def test_the_history_shows_tool_calls_and_results(alice: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    call = {"id": "c1", "type": "function",
            "function": {"name": "read", "arguments": '{"path": "a.txt"}'}}
    Message.objects.create(chat_id=chat_id, position=0, role="user", content="read a.txt")
    Message.objects.create(chat_id=chat_id, position=1, role="assistant", content=None,
                           tool_calls=[call], model="fake-model",
                           usage={"input_tokens": 5, "output_tokens": 2})
    Message.objects.create(chat_id=chat_id, position=2, role="tool", content="A",
                           tool_call_id="c1", tool_name="read")

    messages = alice.client.get(f"/api/chats/{chat_id}").json()["messages"]

    assert messages[1]["tool_calls"] == [call]
    assert messages[1]["model"] == "fake-model"
    assert messages[1]["usage"] == {"input_tokens": 5, "output_tokens": 2}
    assert {k: messages[2][k] for k in ("tool_call_id", "tool_name", "is_error")} == {
        "tool_call_id": "c1", "tool_name": "read", "is_error": False}


def test_queued_messages_are_listed_apart(alice: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    _seed(chat_id, ("user", "first"), ("assistant", "ok"))
    Message.objects.create(chat_id=chat_id, position=None, role="user", content="next",
                           status="queued")

    body = alice.client.get(f"/api/chats/{chat_id}").json()

    assert [m["content"] for m in body["messages"]] == ["first", "ok"]
    assert [(m["content"], m["status"], m["position"]) for m in body["queued"]] == [
        ("next", "queued", None)]


def test_compacted_messages_stay_in_the_history_marked(alice: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    old, _ = _seed(chat_id, ("user", "old"), ("assistant", "summary"))
    Message.objects.filter(pk=old.pk).update(compacted=True)

    messages = alice.client.get(f"/api/chats/{chat_id}").json()["messages"]

    assert [(m["content"], m["compacted"]) for m in messages] == [("old", True),
                                                                   ("summary", False)]


def test_the_detail_says_when_a_turn_runs(alice: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    _hold_turn(chat_id)

    assert alice.client.get(f"/api/chats/{chat_id}").json()["running"] is True


def test_a_turn_whose_lease_ran_out_is_not_running(alice: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    _hold_turn(chat_id, seconds=-1)

    assert alice.client.get(f"/api/chats/{chat_id}").json()["running"] is False


# --- patch ---------------------------------------------------------------------------

def test_alice_renames_her_chat(alice: Any) -> None:
    chat = _create(alice, title="old")
    Chat.objects.filter(pk=chat["chat_id"]).update(updated_at=T0)

    response = alice.client.patch(f"/api/chats/{chat['chat_id']}", {"title": "new"},
                                  format="json")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == CHAT_KEYS
    assert body["title"] == "new"
    assert body["created_at"] == chat["created_at"]
    assert dt.datetime.fromisoformat(body["updated_at"]) > T0
    assert Chat.objects.get(pk=chat["chat_id"]).title == "new"


def test_a_title_may_be_cleared(alice: Any) -> None:
    chat = _create(alice, title="old")

    body = alice.client.patch(f"/api/chats/{chat['chat_id']}", {"title": ""},
                              format="json").json()

    assert body["title"] == ""


@pytest.mark.parametrize("payload, field", [
    ({}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": None}, "title"),
    ({"title": "ok", "profile": "fake"}, "profile"),
])
def test_renaming_validates_the_body(alice: Any, payload: dict, field: str) -> None:
    chat = _create(alice, title="old")

    response = alice.client.patch(f"/api/chats/{chat['chat_id']}", payload, format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert set(response.json()["fields"]) == {field}
    assert Chat.objects.get(pk=chat["chat_id"]).title == "old"


# --- delete --------------------------------------------------------------------------

def test_alice_deletes_her_chat_and_it_is_gone(alice: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    kept = _create(alice)["chat_id"]
    _seed(chat_id, ("user", "hi"))

    response = alice.client.delete(f"/api/chats/{chat_id}")

    assert response.status_code == 200
    assert response.json() == {"deleted": True}
    assert alice.client.get(f"/api/chats/{chat_id}").status_code == 404
    assert alice.client.delete(f"/api/chats/{chat_id}").json() == NO_SUCH_CHAT
    assert not Message.objects.filter(chat_id=chat_id).exists()
    assert [c["chat_id"] for c in alice.client.get("/api/chats").json()["chats"]] == [kept]


def test_deleting_a_chat_with_a_running_turn_cancels_the_turn_first(
        alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    chat_id = _create(alice)["chat_id"]
    _hold_turn(chat_id)
    listener = ControlListener(chat_id)
    # The turn runner would let go of the chat once cancelled; this one does so at once.
    monkeypatch.setattr("chats.services.is_running",
                        lambda chat, calls=iter([True]): next(calls, False))
    try:
        response = alice.client.delete(f"/api/chats/{chat_id}")

        assert response.json() == {"deleted": True}
        assert listener.receive() == {"type": "turn.cancel"}
    finally:
        listener.close()
    assert not Chat.objects.filter(pk=chat_id).exists()


# --- context -------------------------------------------------------------------------

def test_the_context_of_a_new_chat(alice: Any, profile: Any) -> None:
    chat_id = _create(alice)["chat_id"]

    response = alice.client.get(f"/api/chats/{chat_id}/context")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"current_tokens", "context_window", "compaction_threshold",
                         "percent_used"}
    assert type(body["context_window"]) is int and body["context_window"] > 0
    assert type(body["current_tokens"]) is int
    assert 0 <= body["current_tokens"] < body["context_window"]
    assert body["compaction_threshold"] == 0.75
    assert isinstance(body["percent_used"], float)


def test_the_context_has_numbers_even_without_any_profile(alice: Any) -> None:
    chat_id = _create(alice)["chat_id"]

    body = alice.client.get(f"/api/chats/{chat_id}/context").json()

    assert None not in body.values()
    assert type(body["context_window"]) is int and body["context_window"] > 0
    assert type(body["current_tokens"]) is int
    assert isinstance(body["percent_used"], (int, float))


def test_the_context_counts_the_history_against_the_chats_window(alice: Any,
                                                                 profile: Any) -> None:
    _profile("small", context_window=1000)
    chat_id = _create(alice, profile="small")["chat_id"]
    empty = alice.client.get(f"/api/chats/{chat_id}/context").json()["current_tokens"]
    _seed(chat_id, ("user", "please summarise " * 30), ("assistant", "done " * 30))

    body = alice.client.get(f"/api/chats/{chat_id}/context").json()

    assert body["context_window"] == 1000
    assert body["current_tokens"] > empty + 60
    assert body["percent_used"] == round(100 * body["current_tokens"] / 1000, 2)


def test_the_context_uses_the_default_profile_when_the_chat_has_none(
        alice: Any, profile: Any) -> None:
    profile.context_window = 2000
    profile.save()
    chat_id = _create(alice)["chat_id"]

    assert alice.client.get(f"/api/chats/{chat_id}/context").json()["context_window"] == 2000


def test_compacted_and_queued_messages_do_not_count(alice: Any, profile: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    _seed(chat_id, ("user", "hi"), ("assistant", "hello"))
    before = alice.client.get(f"/api/chats/{chat_id}/context").json()["current_tokens"]
    Message.objects.create(chat_id=chat_id, position=2, role="user", content="x " * 500,
                           compacted=True)
    Message.objects.create(chat_id=chat_id, position=None, role="user", content="y " * 500,
                           status="queued")

    after = alice.client.get(f"/api/chats/{chat_id}/context").json()["current_tokens"]

    assert after == before


# --- compact -------------------------------------------------------------------------

def test_compacting_a_short_chat_is_not_enough_history(alice: Any, profile: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    _seed(chat_id, ("user", "hi"), ("assistant", "hello"))

    response = alice.client.post(f"/api/chats/{chat_id}/compact")

    assert response.status_code == 400
    assert response.json()["error"] == "not_enough_history"
    assert set(response.json()) == {"error", "message"}
    assert not Message.objects.filter(chat_id=chat_id, compacted=True).exists()


def test_compacting_while_a_turn_runs_is_a_409(alice: Any, profile: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    _hold_turn(chat_id)

    response = alice.client.post(f"/api/chats/{chat_id}/compact")

    assert response.status_code == 409
    assert response.json()["error"] == "turn_running"


def test_compacting_a_long_chat_summarises_the_older_exchanges(alice: Any,
                                                               profile: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    exchanges = [pair for i in range(12) for pair in (("user", f"question {i} " * 20),
                                                      ("assistant", f"answer {i} " * 20))]
    _seed(chat_id, *exchanges)

    response = alice.client.post(f"/api/chats/{chat_id}/compact")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tokens_before", "tokens_after", "turns_removed"}
    assert body["turns_removed"] > 0
    assert body["tokens_after"] < body["tokens_before"]


# --- cancel --------------------------------------------------------------------------

def test_cancel_when_nothing_runs_cancels_nothing(alice: Any) -> None:
    chat_id = _create(alice)["chat_id"]

    response = alice.client.post(f"/api/chats/{chat_id}/cancel")

    assert response.status_code == 200
    assert response.json() == {"cancelled": False}


def test_cancel_tells_the_running_turn_to_stop(alice: Any) -> None:
    chat_id = _create(alice)["chat_id"]
    _hold_turn(chat_id)
    listener = ControlListener(chat_id)
    try:
        response = alice.client.post(f"/api/chats/{chat_id}/cancel")

        assert response.json() == {"cancelled": True}
        assert listener.receive() == {"type": "turn.cancel"}
    finally:
        listener.close()


# --- chat profile --------------------------------------------------------------------

def test_a_new_chat_follows_the_default_profile(alice: Any, profile: Any) -> None:
    chat_id = _create(alice)["chat_id"]

    response = alice.client.get(f"/api/chats/{chat_id}/profile")

    assert response.status_code == 200
    assert response.json() == {"profile_name": "fake", "follows_default": True}


@pytest.mark.parametrize("key", ["name", "profile_name"])
def test_alice_switches_her_chats_profile(alice: Any, profile: Any, key: str) -> None:
    _profile("other")
    chat_id = _create(alice, profile="fake")["chat_id"]

    response = alice.client.put(f"/api/chats/{chat_id}/profile", {key: "other"},
                                format="json")

    assert response.status_code == 200
    assert response.json() == {"profile_name": "other"}
    assert alice.client.get(f"/api/chats/{chat_id}/profile").json() == {
        "profile_name": "other", "follows_default": False}
    assert alice.client.get(f"/api/chats/{chat_id}").json()["profile"] == "other"


def test_the_active_profile_alias_reads_and_switches(alice: Any, profile: Any) -> None:
    chat_id = _create(alice)["chat_id"]

    switched = alice.client.post(f"/api/chats/{chat_id}/active-profile",
                                 {"profile_name": "fake"}, format="json")
    read = alice.client.get(f"/api/chats/{chat_id}/active-profile")

    assert switched.status_code == 200
    assert switched.json() == {"profile_name": "fake"}
    assert read.json() == {"profile_name": "fake", "follows_default": False}


def test_a_member_may_switch_her_chats_profile(alice: Any, profile: Any) -> None:
    chat_id = _create(alice)["chat_id"]

    assert alice.client.put(f"/api/chats/{chat_id}/profile", {"name": "fake"},
                            format="json").status_code == 200


def test_switching_to_an_unknown_profile_is_a_400(alice: Any, profile: Any) -> None:
    chat_id = _create(alice, profile="fake")["chat_id"]

    response = alice.client.put(f"/api/chats/{chat_id}/profile", {"name": "nope"},
                                format="json")

    assert response.status_code == 400
    message = "No profile named 'nope'; GET /api/profiles lists them."
    assert response.json() == {"error": "unknown_profile", "message": message,
                               "fields": {"name": message}}
    assert Chat.objects.get(pk=chat_id).profile == profile


@pytest.mark.parametrize("payload, field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "fake", "model": "x"}, "model"),
])
def test_switching_validates_the_body(alice: Any, profile: Any, payload: dict,
                                      field: str) -> None:
    chat_id = _create(alice)["chat_id"]

    response = alice.client.put(f"/api/chats/{chat_id}/profile", payload, format="json")

    assert response.status_code == 400
    assert set(response.json()["fields"]) == {field}


def test_a_chat_loses_its_profile_when_the_profile_is_deleted(alice: Any, profile: Any) -> None:
    doomed = _profile("doomed")
    chat_id = _create(alice, profile="doomed")["chat_id"]
    doomed.delete()

    assert alice.client.get(f"/api/chats/{chat_id}/profile").json() == {
        "profile_name": "fake", "follows_default": True}
    assert alice.client.get(f"/api/chats/{chat_id}").json()["profile"] is None


def test_switching_to_a_window_the_history_does_not_fit_is_a_400(alice: Any,
                                                                 profile: Any) -> None:
    _profile("tiny", context_window=256)
    chat_id = _create(alice, profile="fake")["chat_id"]
    _seed(chat_id, ("user", "word " * 2000), ("assistant", "ok"))

    response = alice.client.put(f"/api/chats/{chat_id}/profile", {"name": "tiny"},
                                format="json")

    assert response.status_code == 400
    assert response.json()["error"] == "context_too_large"
    assert Chat.objects.get(pk=chat_id).profile == profile


# --- panic ---------------------------------------------------------------------------

def test_panic_with_nothing_running_cancels_nothing(alice: Any) -> None:
    _create(alice)

    response = alice.client.post("/api/panic")

    assert response.status_code == 200
    assert response.json() == {"cancelled": 0}


def test_panic_stops_alices_running_turns_only(alice: Any, bob: Any) -> None:
    running = _create(alice)["chat_id"]
    _create(alice)
    bobs = _create(bob)["chat_id"]
    _hold_turn(running)
    _hold_turn(bobs)
    alices_turn, bobs_turn = ControlListener(running), ControlListener(bobs)
    try:
        response = alice.client.post("/api/panic")

        assert response.json() == {"cancelled": 1}
        assert alices_turn.receive() == {"type": "turn.cancel"}
        with pytest.raises(queue.Empty):
            bobs_turn.receive(timeout=0.2)
    finally:
        alices_turn.close()
        bobs_turn.close()


def test_an_admins_panic_stops_every_running_turn(alice: Any, bob: Any, admin: Any) -> None:
    for actor in (alice, bob):
        _hold_turn(_create(actor)["chat_id"])

    assert admin.client.post("/api/panic").json() == {"cancelled": 2}


def test_panic_needs_a_token(anon: APIClient) -> None:
    assert anon.post("/api/panic").status_code == 401


# --- ownership -----------------------------------------------------------------------

CHAT_CALLS = [
    ("get", "", None),
    ("patch", "", {"title": "mine now"}),
    ("delete", "", None),
    ("get", "/context", None),
    ("post", "/compact", None),
    ("post", "/cancel", None),
    ("get", "/profile", None),
    ("put", "/profile", {"name": "fake"}),
    ("get", "/active-profile", None),
    ("post", "/active-profile", {"profile_name": "fake"}),
]
CALL_IDS = [f"{method.upper()} {suffix or '/'}" for method, suffix, _ in CHAT_CALLS]


def _call(client: APIClient, method: str, path: str, body: dict | None) -> Any:
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize("method, suffix, body", CHAT_CALLS, ids=CALL_IDS)
def test_bob_cannot_reach_alices_chat(alice: Any, bob: Any, profile: Any, method: str,
                                      suffix: str, body: dict | None) -> None:
    chat = _create(alice, title="private")
    _hold_turn(chat["chat_id"])  # so that cancel would have something to stop

    response = _call(bob.client, method, f"/api/chats/{chat['chat_id']}{suffix}", body)

    assert response.status_code == 404
    assert response.json() == NO_SUCH_CHAT
    stored = Chat.objects.get(pk=chat["chat_id"])
    assert (stored.title, stored.profile) == ("private", None)


@pytest.mark.parametrize("method, suffix, body", CHAT_CALLS, ids=CALL_IDS)
def test_an_admin_cannot_reach_alices_chat_either(alice: Any, admin: Any, profile: Any,
                                                  method: str, suffix: str,
                                                  body: dict | None) -> None:
    chat_id = _create(alice, title="private")["chat_id"]

    response = _call(admin.client, method, f"/api/chats/{chat_id}{suffix}", body)

    assert response.status_code == 404
    assert response.json() == NO_SUCH_CHAT


@pytest.mark.parametrize("chat_id", ["not-a-uuid", "123", str(uuid.UUID(int=7))])
@pytest.mark.parametrize("method, suffix, body", CHAT_CALLS, ids=CALL_IDS)
def test_a_chat_id_that_names_no_chat_is_a_404(alice: Any, profile: Any, method: str,
                                               suffix: str, body: dict | None,
                                               chat_id: str) -> None:
    response = _call(alice.client, method, f"/api/chats/{chat_id}{suffix}", body)

    assert response.status_code == 404
    assert response.json() == NO_SUCH_CHAT


@pytest.mark.parametrize("method, suffix, body", CHAT_CALLS, ids=CALL_IDS)
def test_every_chat_endpoint_needs_a_token(alice: Any, anon: APIClient, method: str,
                                           suffix: str, body: dict | None) -> None:
    chat_id = _create(alice)["chat_id"]

    response = _call(anon, method, f"/api/chats/{chat_id}{suffix}", body)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert Chat.objects.filter(pk=chat_id).exists()


def test_listing_and_creating_need_a_token(anon: APIClient) -> None:
    assert anon.get("/api/chats").status_code == 401
    assert anon.post("/api/chats", {}, format="json").status_code == 401
    assert not Chat.objects.exists()
