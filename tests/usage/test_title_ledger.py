"""The short title the model writes after a chat's first reply is a model call like any
other: it is written to the usage ledger (marked ``title``) with the upstream's usage
numbers and counts against the budgets; a user whose budget is used up keeps the title
from his first message and no title call is made.

With the fake upstream over real HTTP, so the numbers come from the real ``openai``
client's parsing of what the upstream reported."""

from __future__ import annotations

import asyncio
import decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from agents import events as ev
from chats import turns
from chats.models import Chat
from tests.chats.wsutil import (
    connect,
    fresh_runtime,  # noqa: F401
    new_chat,
    receive_until,
    send,
    wait_idle,
)
from tests.fake_upstream import Text
from usage.models import Budget, ProfilePrice, UsageRecord

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_runtime")]


def ledger(chat_id: Any) -> list[tuple]:
    return list(UsageRecord.objects.filter(chat_id=chat_id).order_by("id").values_list(
        "purpose", "input_tokens", "output_tokens", "user__username", "profile_name",
        "model", "charge_id"))


async def titles_done() -> None:
    """Wait for the model-written titles this process started (background tasks)."""
    background = list(turns.get_manager().background)
    if background:
        await asyncio.wait_for(asyncio.gather(*background), 10)


@database_sync_to_async
def allow_titles(profile: Any) -> None:
    type(profile).objects.filter(pk=profile.pk).update(auto_title=True)


async def first_turn(alice: Any) -> tuple[Chat, Any]:
    """A chat whose first turn (and its title task, if any) has ended; and its socket."""
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "Plan a trip to Lisbon"})
    await receive_until(comm, ev.TURN_COMPLETE)
    await wait_idle(chat.id)
    await titles_done()
    return chat, comm


async def test_the_title_call_is_in_the_ledger_with_the_upstreams_usage(alice, profile,
                                                                         upstream):
    await allow_titles(profile)
    await database_sync_to_async(ProfilePrice.objects.create)(
        profile=profile, input_per_million=decimal.Decimal("2"),
        output_per_million=decimal.Decimal("10"))
    await database_sync_to_async(Budget.objects.create)(user=alice.user, period="day",
                                                        limit_tokens=1_000_000)
    upstream.enqueue(Text("Here is a plan.", usage=(777, 8)),
                     Text("Lisbon Museum Weekend", usage=(321, 7)))

    chat, comm = await first_turn(alice)

    events = await receive_until(comm, ev.TITLE)
    await comm.disconnect()
    assert events[-1]["data"] == {"title": "Lisbon Museum Weekend"}
    rows = await database_sync_to_async(ledger)(chat.id)
    assert [r[:6] for r in rows] == [
        ("turn", 777, 8, "alice", "fake", "fake-model"),
        ("title", 321, 7, "alice", "fake", "fake-model")]
    assert rows[1][6] is None  # after the turn: not part of the turn's charge
    title = await database_sync_to_async(UsageRecord.objects.get)(purpose="title")
    assert title.cost == decimal.Decimal("0.000712")  # 321 x 2 + 7 x 10 per million
    budget = (await sync_to_async(alice.client.get)("/api/budgets")).json()["budgets"][0]
    assert budget["used_tokens"] == 777 + 8 + 321 + 7
    grouped = (await sync_to_async(alice.client.get)("/api/usage?group_by=purpose")).json()
    assert [(g["key"], g["calls"], g["input_tokens"], g["output_tokens"])
            for g in grouped["groups"]] == [("title", 1, 321, 7), ("turn", 1, 777, 8)]


async def test_no_title_call_when_the_budget_is_used_up(alice, profile, upstream):
    await allow_titles(profile)
    await database_sync_to_async(Budget.objects.create)(user=alice.user, period="day",
                                                        limit_tokens=100)
    # The turn is admitted (nothing used yet) and uses the whole budget.
    upstream.enqueue(Text("Here is a plan.", usage=(90, 20)),
                     Text("Lisbon Museum Weekend", usage=(321, 7)))

    chat, comm = await first_turn(alice)
    await comm.disconnect()

    assert len(upstream.requests) == 1  # the turn's call only
    rows = await database_sync_to_async(ledger)(chat.id)
    assert [r[:3] for r in rows] == [("turn", 90, 20)]
    await database_sync_to_async(chat.refresh_from_db)()
    assert chat.title == "Plan a trip to Lisbon"  # from the first message


async def test_a_groups_used_up_budget_also_stops_the_title(alice, profile, upstream):
    from django.contrib.auth.models import Group

    @database_sync_to_async
    def group_budget() -> None:
        team = Group.objects.create(name="team")
        alice.user.groups.add(team)
        Budget.objects.create(group=team, period="month", limit_tokens=50)

    await allow_titles(profile)
    await group_budget()
    upstream.enqueue(Text("Here is a plan.", usage=(40, 10)),
                     Text("Lisbon Museum Weekend", usage=(321, 7)))

    chat, comm = await first_turn(alice)
    await comm.disconnect()

    assert len(upstream.requests) == 1
    assert await database_sync_to_async(ledger)(chat.id) != []
    assert not await database_sync_to_async(
        UsageRecord.objects.filter(purpose="title").exists)()
