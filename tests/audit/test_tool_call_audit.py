"""Every tool call of a turn is in the audit log once, also when the turn is cancelled
while the call runs, while it awaits its verdict, or before its turn in the round came.
Through the real consumer and turn runner, with the fake upstream over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from agents import events as ev
from audit.models import AuditEvent
from permissions.models import PermissionPolicy
from tests.chats.wsutil import (
    connect,
    fresh_runtime,  # noqa: F401
    new_chat,
    of_type,
    receive_until,
    send,
    wait_idle,
)
from tests.fake_upstream import Text, ToolCalls

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_runtime")]


@database_sync_to_async
def set_policy(mode: str) -> None:
    PermissionPolicy.objects.update_or_create(pk=1, defaults={"mode": mode,
                                                              "tool_overrides": {}})


@database_sync_to_async
def audited(chat_id: Any) -> list[dict[str, Any]]:
    return [e.to_dict() for e in AuditEvent.objects.filter(kind="tool_call", chat_id=chat_id)
            .order_by("id")]


async def start(alice: Any, upstream: Any, *replies: Any) -> tuple[Any, Any]:
    upstream.enqueue(*replies)
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    return chat, comm


async def test_a_call_cut_off_while_it_runs_and_the_one_after_it_are_audited(
        alice, profile, upstream):
    await set_policy("autonomous")
    chat, comm = await start(alice, upstream, ToolCalls([
        ("slow", "bash", {"command": "sleep 30"}),
        ("next", "write", {"path": "never.txt", "content": "x"})]))
    events = await receive_until(comm, ev.TOOL_USE)
    assert events[-1]["data"]["tool_use_id"] == "slow"
    await send(comm, {"type": "cancel"})
    events = await receive_until(comm, ev.CANCELLED)
    assert of_type(events, ev.TOOL_RESULT) == []
    await wait_idle(chat.id)
    await comm.disconnect()

    records = await audited(chat.id)
    assert [r["data"]["id"] for r in records] == ["slow", "next"]
    slow, after = (r["data"] for r in records)
    assert records[0]["action"] == "bash" and records[0]["actor"] == "alice"
    assert slow["arguments"] == {"command": "sleep 30"}
    assert (slow["decision"], slow["status"], slow["ran"]) == ("allow", "cancelled", True)
    assert slow["duration_ms"] >= 0 and "cancelled" in slow["reason"]
    assert records[1]["action"] == "write"
    assert after["arguments"] == {"path": "never.txt", "content": "x"}
    assert (after["status"], after["ran"], after["duration_ms"]) == ("cancelled", False, None)
    assert after["decision"] == "undecided"


async def test_a_call_awaiting_its_verdict_when_the_turn_is_cancelled_is_audited(
        alice, profile, upstream):
    await set_policy("interactive")
    chat, comm = await start(alice, upstream,
                             ToolCalls([("asked", "bash", {"command": "echo hi"})]))
    await receive_until(comm, ev.TOOL_REQUEST)
    await send(comm, {"type": "cancel"})
    await receive_until(comm, ev.CANCELLED)
    await wait_idle(chat.id)
    await comm.disconnect()

    [record] = await audited(chat.id)
    data = record["data"]
    assert record["action"] == "bash" and data["id"] == "asked"
    assert (data["decision"], data["verdict"], data["status"], data["ran"]) == \
        ("ask", "cancelled", "cancelled", False)
    assert data["approver"] is None


async def test_calls_that_got_their_result_are_not_audited_again_at_the_end(
        alice, profile, upstream):
    await set_policy("autonomous")
    chat, comm = await start(alice, upstream, ToolCalls([
        ("first", "bash", {"command": "echo one"}), ("bad", "bash", "{not json")]),
        ToolCalls([("second", "bash", {"command": "sleep 30"})]))
    events = await receive_until(comm, ev.TOOL_USE)
    while not any(e["type"] == ev.TOOL_USE and e["data"]["tool_use_id"] == "second"
                  for e in events):
        events = await receive_until(comm, ev.TOOL_USE)
    await send(comm, {"type": "cancel"})
    await receive_until(comm, ev.CANCELLED)
    await wait_idle(chat.id)
    await comm.disconnect()

    records = {r["data"]["id"]: r["data"] for r in await audited(chat.id)}
    assert len(await audited(chat.id)) == 3
    assert (records["first"]["status"], records["first"]["decision"]) == ("ok", "allow")
    assert (records["bad"]["status"], records["bad"]["decision"]) == \
        ("not_run", "invalid_arguments")
    assert records["bad"]["arguments"] == {"_raw": "{not json"}
    assert (records["second"]["status"], records["second"]["ran"]) == ("cancelled", True)


async def test_a_turn_that_ends_normally_audits_each_call_once(alice, profile, upstream):
    await set_policy("autonomous")
    chat, comm = await start(alice, upstream,
                             ToolCalls([("a", "bash", {"command": "echo a"}),
                                        ("b", "read", {"path": "missing.txt"})]),
                             Text("done"))
    await receive_until(comm, ev.TURN_COMPLETE)
    await wait_idle(chat.id)
    await comm.disconnect()

    records = await audited(chat.id)
    assert [(r["data"]["id"], r["data"]["status"]) for r in records] == \
        [("a", "ok"), ("b", "error")]
