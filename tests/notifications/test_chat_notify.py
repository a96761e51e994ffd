""""Notify me when this turn ends": a chat's choice of one of its owner's destinations,
and the delivery of a turn's answer (or its error) there.

The API with the test client; the deliveries end to end: a real ``serve``, a real socket,
the real ``openai`` client against the fake upstream, and a local fake receiver that gets
the request over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from chats.models import Chat
from notifications.models import ChatNotify, Destination
from tests.e2e.server import ServeProcess
from tests.e2e.test_team_admin import member_token, new_chat, of_type, turn
from tests.fake_upstream import FakeUpstream, HttpError, Text
from tests.jobs.conftest import FAST, START_TIMEOUT, wait_for
from tests.notifications.receivers import Receiver

PUBLIC = "https://gw.example"


def destination(owner: Any, name: str, url: str = "https://discord.com/api/webhooks/1/x"
                ) -> Destination:
    row = Destination(owner=owner, name=name, kind="discord")
    row.set_target(url)
    row.save()
    return row


# --- the API -------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_chat_notifies_one_of_its_owners_destinations_until_unset(alice):
    chat = Chat.objects.create(owner=alice.user)
    mine = destination(alice.user, "phone")
    url = f"/api/chats/{chat.pk}/notify"

    assert alice.client.get(url).json() == {"chat_id": str(chat.pk), "destination": None,
                                            "name": None}
    chosen = alice.client.put(url, {"destination": mine.pk}, format="json")
    assert chosen.status_code == 200, chosen.content
    assert chosen.json() == {"chat_id": str(chat.pk), "destination": mine.pk,
                             "name": "phone"}
    assert alice.client.get(url).json()["destination"] == mine.pk
    assert alice.client.put(url, {"destination": None}, format="json").json()[
        "destination"] is None
    assert not ChatNotify.objects.exists()


@pytest.mark.django_db
def test_the_end_of_a_turn_costs_no_query_unless_its_chat_notifies(
        alice, django_assert_num_queries):
    from notifications.models import Delivery
    from notifications.services import on_turn_ended

    chat = Chat.objects.create(owner=alice.user)

    def ended(summary: Any) -> None:
        on_turn_ended(None, chat_id=chat.pk.hex, message_id=7, stop_reason="end_turn",
                      summary=summary)

    def unused() -> dict:
        raise AssertionError("no summary for a chat nobody notifies")

    ended(unused)  # reads which chats notify once
    with django_assert_num_queries(0):
        ended(unused)
    ChatNotify.objects.create(chat=chat, destination=destination(alice.user, "phone"))
    ended(lambda: {"chat_title": "", "text": "the answer", "status": "completed"})
    assert Delivery.objects.filter(chat_id=chat.pk).count() == 1


@pytest.mark.django_db
def test_another_users_destination_or_chat_is_not_found(alice, bob):
    chat = Chat.objects.create(owner=alice.user)
    bobs = destination(bob.user, "bobs-phone")
    url = f"/api/chats/{chat.pk}/notify"

    refused = alice.client.put(url, {"destination": bobs.pk}, format="json")
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    missing = alice.client.put(url, {"destination": bobs.pk + 1000}, format="json")
    assert missing.status_code == 404 and missing.json() == refused.json()
    assert not ChatNotify.objects.exists()
    # Bob cannot read or set the choice of alice's chat, even with his own destination.
    assert bob.client.get(url).status_code == 404
    assert bob.client.put(url, {"destination": bobs.pk}, format="json").status_code == 404
    for body, field in [({"destination": "phone"}, "destination"), ({}, "destination"),
                        ({"destination": None, "extra": 1}, "extra")]:
        bad = alice.client.put(url, body, format="json")
        assert bad.status_code == 400 and set(bad.json()["fields"]) == {field}, bad.json()


@pytest.mark.django_db
def test_the_choice_goes_with_the_destination(alice):
    chat = Chat.objects.create(owner=alice.user)
    mine = destination(alice.user, "phone")
    alice.client.put(f"/api/chats/{chat.pk}/notify", {"destination": mine.pk}, format="json")

    assert alice.client.delete(f"/api/notifications/destinations/{mine.pk}").status_code == 200

    assert alice.client.get(f"/api/chats/{chat.pk}/notify").json()["destination"] is None


# --- deliveries from a real serve ------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream
           ) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path_factory.mktemp("chat-notify") / "data",
                        {**FAST, "GATEWAY_PUBLIC_URL": PUBLIC})
    proc.start(timeout=START_TIMEOUT)
    try:
        with proc.client() as http:
            assert http.post("/api/profiles", json={"name": "fake", "profile": {
                "provider": "openai", "model": "fake-model",
                "base_url": upstream_server.url}}).status_code == 201
        yield proc
    finally:
        proc.stop()


def add_destination(server: ServeProcess, token: str, name: str, kind: str, url: str) -> int:
    with server.client(token) as http:
        made = http.post("/api/notifications/destinations",
                         json={"name": name, "kind": kind, "target": url})
    assert made.status_code == 201, made.text
    return made.json()["id"]


def choose(server: ServeProcess, token: str, chat_id: str, destination_id: int | None
           ) -> Any:
    with server.client(token) as http:
        return http.put(f"/api/chats/{chat_id}/notify", json={"destination": destination_id})


def deliveries(server: ServeProcess, token: str) -> list[dict]:
    with server.client(token) as http:
        return http.get("/api/notifications/deliveries").json()["deliveries"]


def test_the_reply_of_a_turn_reaches_the_chats_destination(server, upstream):
    with Receiver() as slack:
        dest = add_destination(server, server.admin_token, "team-slack", "slack", slack.url)
        chat_id = new_chat(server, server.admin_token, title="Lisbon")
        assert choose(server, server.admin_token, chat_id, dest).status_code == 200
        upstream.enqueue(Text("Three museums and a tram ride."))

        turn(server, server.admin_token, chat_id, "Plan a day in Lisbon")

        wait_for(lambda: slack.requests, what="the delivery")
        log = wait_for(lambda: [d for d in deliveries(server, server.admin_token)
                                if d["status"] == "delivered"], what="the delivered status")
    assert slack.json(0) == {"text": "*Lisbon: turn completed*\n"
                                     "Three museums and a tram ride."}
    assert len(slack.requests) == 1
    assert log[0]["chat_id"] == chat_id and log[0]["destination"] == "team-slack"
    assert log[0]["source"].startswith("chat_turn:")

    # Unset: the next turn of the chat is not announced (a turn of another chat that is,
    # run after it, shows the announcements have been made).
    assert choose(server, server.admin_token, chat_id, None).json()["destination"] is None
    upstream.enqueue(Text("Unannounced."), Text("Announced."))
    turn(server, server.admin_token, chat_id, "and tomorrow?")
    other = new_chat(server, server.admin_token, title="Other")
    choose(server, server.admin_token, other, dest)
    with Receiver() as slack_again:
        with server.client() as http:
            assert http.patch(f"/api/notifications/destinations/{dest}",
                              json={"target": slack_again.url}).status_code == 200
        turn(server, server.admin_token, other, "hi")
        wait_for(lambda: slack_again.requests, what="the other chat's delivery")
    assert slack_again.json(0)["text"] == "*Other: turn completed*\nAnnounced."
    assert [d["chat_id"] for d in deliveries(server, server.admin_token)] == [other, chat_id]


def test_a_long_reply_is_cut_for_discord_with_a_link_back_to_the_chat(server, upstream):
    with Receiver() as discord:
        dest = add_destination(server, server.admin_token, "my-discord", "discord",
                               discord.url)
        chat_id = new_chat(server, server.admin_token, title="Essay")
        choose(server, server.admin_token, chat_id, dest)
        upstream.enqueue(Text("word " * 1000))

        turn(server, server.admin_token, chat_id, "Write a long essay")

        wait_for(lambda: discord.requests, what="the delivery")
    content = discord.json(0)["content"]
    assert content.startswith("**Essay: turn completed**\nword word")
    assert len(content) == 2000
    assert content.endswith(f"full result: {PUBLIC}/#/chats/{chat_id})")


def test_a_failed_turn_is_announced_with_its_error_to_a_members_webhook(server, upstream):
    """A member's turn that ends in an upstream error: the signed webhook gets the error
    sentence, with the chat and the status in its payload."""
    from notifications.signing import verify

    secret = "hook-secret-" + "z" * 20
    member = member_token(server, "nora")
    with Receiver() as hook:
        with server.client(member) as http:
            made = http.post("/api/notifications/destinations", json={
                "name": "ops", "kind": "webhook", "target": hook.url + "/in",
                "secret": secret})
        assert made.status_code == 201, made.text
        chat_id = new_chat(server, member, title="Broken")
        assert choose(server, member, chat_id, made.json()["id"]).status_code == 200
        upstream.enqueue(HttpError(500))

        events = turn(server, member, chat_id, "hello?")

        assert of_type(events, "agent.turn_complete")[0]["stop_reason"] == "error"
        wait_for(lambda: hook.requests, what="the delivery")
    body = hook.json(0)
    assert verify(secret, hook.requests[0]["headers"], hook.requests[0]["body"])
    assert body["event"] == "chat.turn.finished" and body["status"] == "failed"
    assert body["chat_id"] == chat_id and body["stop_reason"] == "error"
    assert body["title"] == "Broken: turn failed"
    assert body["text"] == "The model provider had an internal error. Retry in a moment."
    assert body["link"] == f"{PUBLIC}/#/chats/{chat_id}"
    # The admin's destinations are not the member's: choosing one is "not found".
    admins = add_destination(server, server.admin_token, "admins-own", "slack",
                             "http://127.0.0.1:9/never")
    assert choose(server, member, chat_id, admins).status_code == 404
