"""What a chat keeps: errors as records, and every version after a retry, a regenerate
or an edit. Driven as a client would: the socket for turns, REST for the rest.

Alice owns the chats; bob may not touch them.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from agents import events as ev
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
from tests.fake_upstream import HttpError, Text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_runtime")]


async def rest(actor: Any, method: str, path: str, body: Any = None) -> Any:
    """A REST call from inside the test's event loop, so turns it starts run there."""
    call = getattr(actor.client, method)
    return await sync_to_async(call)(path, body, format="json") if body is not None \
        else await sync_to_async(call)(path)


async def detail(actor: Any, chat: Any) -> dict[str, Any]:
    response = await rest(actor, "get", f"/api/chats/{chat.id}")
    assert response.status_code == 200
    return response.json()


def current(body: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in body["messages"] if m["current"]]


async def failed_turn(alice: Any, upstream: Any, settings: Any) -> tuple[Any, Any, list]:
    settings.GATEWAY_UPSTREAM_RETRIES = 0
    upstream.enqueue(HttpError(500))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "what is a monad?"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    await wait_idle(chat.id)
    return chat, comm, events


async def test_an_upstream_error_is_kept_in_the_history(alice, profile, upstream, settings):
    chat, comm, events = await failed_turn(alice, upstream, settings)
    live = of_type(events, ev.ERROR)[0]["data"]

    body = await detail(alice, chat)

    assert len(body["errors"]) == 1
    kept = body["errors"][0]
    assert kept["id"] == live["error_id"]
    assert kept["code"] == "upstream_error"
    assert kept["message"] == live["message"] == ("The model provider had an internal "
                                                  "error. Retry in a moment.")
    assert "HTTP 500" in kept["detail"] and "'fake'" in kept["detail"]
    assert kept["retryable"] is True and kept["current"] is True
    user = body["messages"][0]
    assert (user["role"], user["content"]) == ("user", "what is a monad?")
    assert kept["message_id"] == user["id"] and kept["after_position"] == user["position"]
    await comm.disconnect()


async def test_retry_answers_and_keeps_the_failed_attempt(alice, profile, upstream, settings):
    chat, comm, _ = await failed_turn(alice, upstream, settings)
    failed = (await detail(alice, chat))["messages"][0]
    upstream.enqueue(Text("A monoid in the category of endofunctors."))

    response = await rest(alice, "post",
                          f"/api/chats/{chat.id}/messages/{failed['id']}/regenerate", {})
    assert response.status_code == 202, response.content
    resent = response.json()
    events = await receive_until(comm, ev.TURN_COMPLETE)
    await wait_idle(chat.id)

    assert text_of(events) == "A monoid in the category of endofunctors."
    assert resent["replaces"] == failed["id"] and resent["superseded"] == [failed["id"]]
    body = await detail(alice, chat)
    assert current(body) == [("user", "what is a monad?"),
                             ("assistant", "A monoid in the category of endofunctors.")]
    old = next(m for m in body["messages"] if m["id"] == failed["id"])
    assert old["status"] == "superseded" and old["superseded_by"] == resent["message_id"]
    new = next(m for m in body["messages"] if m["id"] == resent["message_id"])
    assert new["replaces"] == failed["id"] and new["current"] is True
    # The error stays in the history, marked as belonging to the replaced attempt.
    assert [(e["code"], e["current"]) for e in body["errors"]] == [("upstream_error", False)]
    # The model is not sent the failed attempt twice.
    sent = [m for m in upstream.requests[-1]["messages"] if m["role"] == "user"]
    assert sent == [{"role": "user", "content": "what is a monad?"}]
    await comm.disconnect()


async def answered(alice: Any, upstream: Any, *replies: str) -> tuple[Any, Any]:
    upstream.enqueue(*[Text(r) for r in replies])
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    for n in range(len(replies)):
        await send(comm, {"type": "user_message", "content": f"question {n}"})
        await receive_until(comm, ev.TURN_COMPLETE)
    await wait_idle(chat.id)
    return chat, comm


async def test_regenerate_keeps_the_old_reply_reachable(alice, profile, upstream):
    chat, comm = await answered(alice, upstream, "first take")
    reply = (await detail(alice, chat))["messages"][1]
    upstream.enqueue(Text("second take"))

    response = await rest(alice, "post",
                          f"/api/chats/{chat.id}/messages/{reply['id']}/regenerate", {})
    assert response.status_code == 202
    await receive_until(comm, ev.TURN_COMPLETE)
    await wait_idle(chat.id)

    body = await detail(alice, chat)
    assert current(body) == [("user", "question 0"), ("assistant", "second take")]
    old = next(m for m in body["messages"] if m["id"] == reply["id"])
    assert (old["content"], old["status"], old["current"]) == \
        ("first take", "superseded", False)
    await comm.disconnect()


async def test_edit_and_resend_replaces_the_question_and_what_followed(alice, profile,
                                                                       upstream):
    chat, comm = await answered(alice, upstream, "answer 0", "answer 1")
    first = (await detail(alice, chat))["messages"][0]
    upstream.enqueue(Text("answer to the edit"))

    response = await rest(alice, "post", f"/api/chats/{chat.id}/messages/{first['id']}/edit",
                          {"content": "question 0, better asked"})
    assert response.status_code == 202
    assert len(response.json()["superseded"]) == 4
    await receive_until(comm, ev.TURN_COMPLETE)
    await wait_idle(chat.id)

    body = await detail(alice, chat)
    assert current(body) == [("user", "question 0, better asked"),
                             ("assistant", "answer to the edit")]
    assert [m["content"] for m in body["messages"] if not m["current"]] == [
        "question 0", "answer 0", "question 1", "answer 1"]
    assert upstream.requests[-1]["messages"][1:] == [
        {"role": "user", "content": "question 0, better asked"}]
    await comm.disconnect()


async def test_a_replaced_message_cannot_be_resent_again(alice, profile, upstream):
    chat, comm = await answered(alice, upstream, "one")
    reply = (await detail(alice, chat))["messages"][1]
    upstream.enqueue(Text("two"))
    await rest(alice, "post", f"/api/chats/{chat.id}/messages/{reply['id']}/regenerate", {})
    await receive_until(comm, ev.TURN_COMPLETE)
    await wait_idle(chat.id)

    again = await rest(alice, "post",
                       f"/api/chats/{chat.id}/messages/{reply['id']}/regenerate", {})

    assert again.status_code == 409 and again.json()["error"] == "not_current"
    await comm.disconnect()


async def test_an_edit_is_validated_and_loses_nothing(alice, profile, upstream):
    chat, comm = await answered(alice, upstream, "kept")
    before = await detail(alice, chat)
    first = before["messages"][0]

    response = await rest(alice, "post", f"/api/chats/{chat.id}/messages/{first['id']}/edit",
                          {"content": "   "})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "content" in response.json()["fields"]
    assert (await detail(alice, chat))["messages"] == before["messages"]
    await comm.disconnect()


async def test_bob_cannot_regenerate_alices_messages(alice, bob, profile, upstream):
    chat, comm = await answered(alice, upstream, "mine")
    reply = (await detail(alice, chat))["messages"][1]

    response = await rest(bob, "post",
                          f"/api/chats/{chat.id}/messages/{reply['id']}/regenerate", {})

    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "No such chat."}
    await comm.disconnect()


async def test_a_message_id_of_another_chat_is_not_found(alice, profile, upstream):
    chat, comm = await answered(alice, upstream, "here")
    other, other_comm = await answered(alice, upstream, "there")
    foreign = (await detail(alice, other))["messages"][0]

    response = await rest(alice, "post",
                          f"/api/chats/{chat.id}/messages/{foreign['id']}/regenerate", {})

    assert response.status_code == 404
    await comm.disconnect()
    await other_comm.disconnect()


# --- titles ---------------------------------------------------------------------------

async def test_a_chat_is_titled_from_its_first_message_at_once(alice, profile, upstream):
    upstream.enqueue(Text("Sure."))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message",
                      "content": "Plan a   three-day trip to Lisbon\nwith museums and food"})
    await receive_until(comm, ev.TURN_STARTED)
    assert (await detail(alice, chat))["title"] == "Plan a three-day trip to Lisbon"
    await receive_until(comm, ev.TURN_COMPLETE)
    await comm.disconnect()


async def test_the_model_writes_a_title_when_the_profile_allows_it(alice, profile, upstream):
    await sync_to_async(type(profile).objects.filter(pk=profile.pk).update)(auto_title=True)
    upstream.enqueue(Text("Here is a plan."), Text('"Lisbon Museum Weekend."'))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "Plan a trip to Lisbon"})

    events = await receive_until(comm, ev.TITLE)

    assert events[-1]["data"] == {"title": "Lisbon Museum Weekend"}
    assert (await detail(alice, chat))["title"] == "Lisbon Museum Weekend"
    asked = upstream.requests[-1]
    assert "tools" not in asked and "Plan a trip to Lisbon" in asked["messages"][1]["content"]
    await comm.disconnect()


async def test_no_title_lookup_after_a_first_reply_when_the_profile_titles_nothing(
        alice, profile, upstream, monkeypatch):
    """``auto_title`` off (the default): the turn knows it from the cached configuration,
    and the end of its first reply costs no database call for a title."""
    from chats import history

    looked: list[object] = []
    monkeypatch.setattr(history, "_first_exchange", lambda chat_id: looked.append(chat_id))
    upstream.enqueue(Text("Here is a plan."))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "Plan a trip to Lisbon"})
    await receive_until(comm, ev.TURN_COMPLETE)
    await wait_idle(chat.id)
    assert looked == [] and len(upstream.requests) == 1
    await comm.disconnect()


async def test_a_title_a_person_set_is_never_replaced(alice, profile, upstream):
    await sync_to_async(type(profile).objects.filter(pk=profile.pk).update)(auto_title=True)
    upstream.enqueue(Text("Here is a plan."))
    chat = await new_chat(alice.user, title="My trip")
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "Plan a trip to Lisbon"})
    await receive_until(comm, ev.TURN_COMPLETE)
    await wait_idle(chat.id)

    assert (await detail(alice, chat))["title"] == "My trip"
    assert len(upstream.requests) == 1  # no title call for a chat a person titled
    await comm.disconnect()
