"""A turn's model calls reach the usage ledger in the database call that stores their
reply (one thread hop at the end of a model call, not two), and a call whose reply is
never stored (a cancel, a failure) is written when the turn ends, before its charge
closes."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from agents.loop import ModelCall
from chats import store, turns
from chats.models import Chat, Message
from usage.models import TurnCharge, UsageRecord
from usage.turns import TurnLedger

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def new_chat(user) -> Chat:
    return Chat.objects.create(owner=user)


@database_sync_to_async
def rows(chat_id) -> list[tuple]:
    return list(UsageRecord.objects.filter(chat_id=str(chat_id)).order_by("id").values_list(
        "purpose", "model", "input_tokens", "output_tokens", "charge_id"))


@database_sync_to_async
def replies(chat_id) -> list[str]:
    return list(Message.objects.filter(chat_id=chat_id, role="assistant")
                .values_list("content", flat=True))


def counting_db(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = turns.db

    def counted(fn):
        run = real(fn)

        async def call(*args, **kwargs):
            calls.append(getattr(fn, "__name__", str(fn)))
            return await run(*args, **kwargs)
        return call

    monkeypatch.setattr(turns, "db", counted)
    return calls


async def test_a_reply_and_its_model_call_are_one_database_call(alice, profile, monkeypatch):
    chat = await new_chat(alice.user)
    ledger = TurnLedger(alice.user.id, str(chat.id), profile.name, None,
                        username=alice.user.username)
    saver = turns.DbTurnStore(store.MessageWriter(uuid.UUID(str(chat.id)), 1), ledger=ledger)
    calls = counting_db(monkeypatch)
    await ledger(ModelCall("fake-model", 12, 34, 5))
    assert await rows(chat.id) == []  # kept until the reply is stored
    await saver.save_assistant("the answer", None, {"input_tokens": 12, "output_tokens": 34},
                               "fake-model", "done")
    assert calls == ["_save_reply"]
    assert await rows(chat.id) == [("turn", "fake-model", 12, 34, None)]
    assert await replies(chat.id) == ["the answer"]
    await ledger.flush()  # nothing left: no second row
    assert len(await rows(chat.id)) == 1


async def test_a_model_call_whose_reply_is_never_stored_is_written_at_the_turns_end(
        alice, profile):
    chat = await new_chat(alice.user)
    charge = await database_sync_to_async(TurnCharge.objects.create)(
        user=alice.user, chat_id=chat.id, expires_at=timezone.now() + dt.timedelta(hours=1))
    ledger = TurnLedger(alice.user.id, str(chat.id), profile.name, charge.pk)
    await ledger(ModelCall("fake-model", 7, 8, 5))  # then the turn is cancelled
    await turns.TurnManager._close_charge(ledger, charge.pk)
    assert await rows(chat.id) == [("turn", "fake-model", 7, 8, charge.pk)]
    charge = await database_sync_to_async(TurnCharge.objects.get)(pk=charge.pk)
    assert charge.closed_at is not None
    assert charge.tokens == 15


async def test_a_failed_store_keeps_the_model_call_for_the_turns_end(alice, profile):
    chat = await new_chat(alice.user)
    ledger = TurnLedger(alice.user.id, str(chat.id), profile.name, None)
    saver = turns.DbTurnStore(store.MessageWriter(uuid.UUID(str(chat.id)), 1), ledger=ledger)
    await ledger(ModelCall("fake-model", 1, 2, 5))

    def broken(**fields):
        raise RuntimeError("disk full")

    saver.writer.add = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await saver.save_assistant("lost", None, {}, "fake-model", "done")
    # The failed call wrote nothing (one transaction): one row once the turn has ended.
    await ledger.flush()
    assert [r[:4] for r in await rows(chat.id)] == [("turn", "fake-model", 1, 2)]
