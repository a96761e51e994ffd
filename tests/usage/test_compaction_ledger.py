"""The summary call of a compaction is a model call like any other: it is written to the
usage ledger (marked ``compaction``), added to the turn's charge and counted by budgets.
With the fake upstream over real HTTP, so the usage numbers come from the real
``openai`` client's parsing of what the upstream reported."""

from __future__ import annotations

import decimal
from typing import Any

import pytest
from channels.db import database_sync_to_async

from agents import events as ev
from chats.models import Chat, Compaction, Message
from tests.chats.wsutil import (
    connect,
    fresh_runtime,  # noqa: F401
    new_chat,
    of_type,
    receive_until,
    send,
    wait_idle,
)
from tests.fake_upstream import Text
from usage.models import Budget, ProfilePrice, TurnCharge, UsageRecord


def seed(chat_id: Any, n: int, usage: int | None = None) -> None:
    """``n`` done exchanges; the last answer carries ``usage`` as its reported input."""
    for i in range(n):
        Message.objects.create(chat_id=chat_id, position=2 * i, role="user",
                               content=f"question {i} " * 30)
        last = Message.objects.create(chat_id=chat_id, position=2 * i + 1, role="assistant",
                                      content=f"answer {i} " * 30, model="fake-model")
    if usage is not None:
        last.usage = {"input_tokens": usage, "output_tokens": 5}
        last.save(update_fields=["usage"])


def ledger(chat_id: Any) -> list[tuple]:
    return list(UsageRecord.objects.filter(chat_id=chat_id).order_by("id").values_list(
        "purpose", "input_tokens", "output_tokens", "user__username", "profile_name",
        "model"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_an_automatic_compaction_is_in_the_ledger_and_the_turns_charge(
        alice, profile, upstream):
    @database_sync_to_async
    def prepare(chat_id: Any) -> None:
        seed(chat_id, 5, usage=3000)
        profile.context_window = 2000  # 3000 used: far past 75% of it
        profile.save(update_fields=["context_window"])
        ProfilePrice.objects.create(profile=profile, input_per_million=decimal.Decimal("2"),
                                    output_per_million=decimal.Decimal("10"))
        Budget.objects.create(user=alice.user, period="day", limit_tokens=10_000_000)

    chat = await new_chat(alice.user)
    await prepare(chat.id)
    upstream.enqueue(Text("SUMMARY: five questions.", usage=(1234, 56)),
                     Text("the answer", usage=(777, 8)))
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "next"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    await comm.disconnect()
    await wait_idle(chat.id)
    assert of_type(events, ev.CONTEXT_COMPACTED), [e["type"] for e in events]

    @database_sync_to_async
    def check() -> None:
        assert Compaction.objects.filter(chat=chat, trigger="auto").count() == 1
        assert ledger(chat.id) == [
            ("compaction", 1234, 56, "alice", "fake", "fake-model"),
            ("turn", 777, 8, "alice", "fake", "fake-model")]
        summary = UsageRecord.objects.get(chat_id=chat.id, purpose="compaction")
        # 1234 x 2 + 56 x 10 per million
        assert summary.cost == decimal.Decimal("0.003028")
        assert summary.duration_ms >= 0
        charge = TurnCharge.objects.get(chat_id=chat.id)
        assert summary.charge_id == charge.pk
        assert charge.tokens == 1234 + 56 + 777 + 8 and charge.closed_at is not None

    await check()
    body = await database_sync_to_async(alice.client.get)("/api/budgets")
    assert body.json()["budgets"][0]["used_tokens"] == 1234 + 56 + 777 + 8
    records = (await database_sync_to_async(alice.client.get)("/api/usage")).json()
    assert [r["purpose"] for r in records["records"]] == ["turn", "compaction"]


@pytest.mark.django_db
def test_a_manual_compaction_is_in_the_ledger_with_the_upstreams_usage(alice, profile,
                                                                       upstream):
    chat = Chat.objects.create(owner=alice.user)
    seed(chat.id, 6)
    upstream.enqueue(Text("They asked six questions.", usage=(4321, 65)))

    response = alice.client.post(f"/api/chats/{chat.id}/compact")

    assert response.status_code == 200, response.content
    assert ledger(chat.id) == [("compaction", 4321, 65, "alice", "fake", "fake-model")]
    grouped = alice.client.get("/api/usage?group_by=purpose").json()["groups"]
    assert [(g["key"], g["input_tokens"]) for g in grouped] == [("compaction", 4321)]
    csv = alice.client.get("/api/usage/export").content.decode().splitlines()
    assert csv[0].endswith(",purpose") and csv[1].endswith(",compaction")
    # No turn ran: the charge opened for it is closed again.
    assert not TurnCharge.objects.filter(closed_at__isnull=True).exists()


@pytest.mark.django_db
def test_a_used_up_budget_refuses_a_manual_compaction_before_the_model_call(
        alice, profile, upstream):
    Budget.objects.create(user=alice.user, period="day", limit_tokens=100)
    UsageRecord.objects.create(user=alice.user, username="alice", profile_name="fake",
                               model="fake-model", input_tokens=90, output_tokens=10,
                               duration_ms=1)
    chat = Chat.objects.create(owner=alice.user)
    seed(chat.id, 6)

    response = alice.client.post(f"/api/chats/{chat.id}/compact")

    assert response.status_code == 429
    assert response.json()["error"] == "budget_exceeded"
    assert upstream.requests == []
    assert not Compaction.objects.exists()
