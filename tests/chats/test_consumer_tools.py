"""Tool calls in turns: the policy, approvals (allow, deny, allow_chat, timeout), rounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from channels.db import database_sync_to_async

from agents import events as ev
from chats.models import Chat, Message, PendingApproval
from permissions.models import PermissionPolicy
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
from tests.fake_upstream import Text, ToolCalls

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_runtime")]


@database_sync_to_async
def set_policy(mode: str, overrides: dict | None = None) -> None:
    PermissionPolicy.objects.update_or_create(pk=1, defaults={
        "mode": mode, "tool_overrides": overrides or {}})


@database_sync_to_async
def rows(chat) -> list[Message]:
    return list(Message.objects.filter(chat=chat).order_by("position"))


def workspace(settings, user) -> Path:
    return Path(settings.GATEWAY_WORKSPACE) / f"@{user.pk}"  # named by the user id


def bash(call_id: str, command: str) -> tuple[str, str, dict]:
    return (call_id, "bash", {"command": command})


async def start(alice, text="go"):
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": text})
    return chat, comm


async def test_interactive_mode_asks_and_nothing_runs_before_the_verdict(
        alice, profile, upstream, settings):
    await set_policy("interactive")
    upstream.enqueue(ToolCalls([bash("c1", "echo made > proof.txt; echo done")]),
                     Text("All done."))
    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TOOL_REQUEST)
    request = events[-1]["data"]["tool_calls"]
    assert request == [{"id": "c1", "name": "bash",
                        "arguments": {"command": "echo made > proof.txt; echo done"}}]
    assert await comm.receive_nothing(timeout=0.3)
    assert not (workspace(settings, alice.user) / "proof.txt").exists()
    assert await database_sync_to_async(
        PendingApproval.objects.filter(chat=chat, verdict__isnull=True).count)() == 1
    await send(comm, {"type": "tool_approval", "verdicts": {"c1": "allow"}})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert [e["data"] for e in of_type(events, ev.TOOL_USE)] == [
        {"tool_use_id": "c1", "tool_name": "bash",
         "arguments": {"command": "echo made > proof.txt; echo done"}}]
    result = of_type(events, ev.TOOL_RESULT)[0]["data"]
    assert result == {"tool_use_id": "c1", "tool_name": "bash", "content": "done",
                      "is_error": False}
    assert text_of(events) == "All done."
    assert (workspace(settings, alice.user) / "proof.txt").read_text() == "made\n"
    # The model got the result back, after its own tool call.
    sent = upstream.requests[-1]["messages"]
    assert sent[-2]["tool_calls"][0]["id"] == "c1"
    assert sent[-1] == {"role": "tool", "tool_call_id": "c1", "content": "done"}
    await wait_idle(chat.id)
    assert [(m.role, m.status) for m in await rows(chat)] == [
        ("user", "done"), ("assistant", "done"), ("tool", "done"), ("assistant", "done")]
    await comm.disconnect()


async def test_a_denied_call_does_not_run_and_the_model_is_told(alice, profile, upstream,
                                                                settings):
    await set_policy("interactive")
    upstream.enqueue(ToolCalls([bash("c1", "touch nope.txt")]), Text("Understood."))
    chat, comm = await start(alice)
    await receive_until(comm, ev.TOOL_REQUEST)
    await send(comm, {"type": "tool_approval", "verdicts": {"c1": "deny"}})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    result = of_type(events, ev.TOOL_RESULT)[0]["data"]
    assert result["is_error"] is True and result["content"].startswith("Denied")
    assert not (workspace(settings, alice.user) / "nope.txt").exists()
    assert upstream.requests[-1]["messages"][-1]["content"].startswith("Denied")
    await comm.disconnect()


async def test_a_call_without_a_verdict_is_denied(alice, profile, upstream, settings):
    await set_policy("interactive")
    upstream.enqueue(ToolCalls([bash("c1", "touch a.txt"), bash("c2", "touch b.txt")]),
                     Text("ok"))
    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TOOL_REQUEST)
    assert [c["id"] for c in events[-1]["data"]["tool_calls"]] == ["c1", "c2"]
    await send(comm, {"type": "tool_approval", "verdicts": {"c1": "allow"}})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    results = {e["data"]["tool_use_id"]: e["data"] for e in of_type(events, ev.TOOL_RESULT)}
    assert results["c1"]["is_error"] is False and results["c2"]["is_error"] is True
    assert (workspace(settings, alice.user) / "a.txt").exists()
    assert not (workspace(settings, alice.user) / "b.txt").exists()
    await comm.disconnect()


async def test_allow_for_this_chat_stops_asking_for_that_tool(alice, profile, upstream):
    await set_policy("interactive")
    upstream.enqueue(ToolCalls([bash("c1", "echo one")]), Text("first"),
                     ToolCalls([bash("c2", "echo two")]), Text("second"))
    chat, comm = await start(alice)
    await receive_until(comm, ev.TOOL_REQUEST)
    await send(comm, {"type": "tool_approval", "verdicts": {"c1": "allow_chat"}})
    await receive_until(comm, ev.TURN_COMPLETE)
    await send(comm, {"type": "user_message", "content": "again"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert of_type(events, ev.TOOL_REQUEST) == []
    assert of_type(events, ev.TOOL_RESULT)[0]["data"]["content"] == "two"
    refreshed = await database_sync_to_async(Chat.objects.get)(pk=chat.pk)
    assert refreshed.allowed_tools == ["bash"]
    # Another chat of the same user still asks.
    other, comm2 = await start(alice)
    upstream.enqueue(ToolCalls([bash("c3", "echo three")]))
    events = await receive_until(comm2, ev.TOOL_REQUEST)
    assert events[-1]["data"]["tool_calls"][0]["id"]
    await send(comm2, {"type": "cancel"})
    await receive_until(comm2, ev.CANCELLED)
    await comm.disconnect()
    await comm2.disconnect()


async def test_no_verdict_before_the_timeout_denies_and_the_turn_goes_on(
        alice, profile, upstream, settings):
    settings.GATEWAY_APPROVAL_TIMEOUT = 0.3
    await set_policy("interactive")
    upstream.enqueue(ToolCalls([bash("c1", "touch late.txt")]), Text("carried on"))
    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)
    error = of_type(events, ev.ERROR)[0]["data"]
    assert error["code"] == "approval_timeout"
    assert of_type(events, ev.TOOL_RESULT)[0]["data"]["is_error"] is True
    assert text_of(events) == "carried on"
    assert not (workspace(settings, alice.user) / "late.txt").exists()
    approval = await database_sync_to_async(PendingApproval.objects.get)(chat=chat)
    assert approval.verdict == "expired"
    await comm.disconnect()


async def test_autonomous_mode_runs_without_asking(alice, profile, upstream):
    await set_policy("autonomous")
    upstream.enqueue(ToolCalls([bash("c1", "echo auto")]), Text("fine"))
    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert of_type(events, ev.TOOL_REQUEST) == []
    assert of_type(events, ev.TOOL_RESULT)[0]["data"]["content"] == "auto"
    await comm.disconnect()


async def test_readonly_mode_allows_read_and_denies_the_rest(alice, profile, upstream,
                                                             settings):
    await set_policy("readonly")
    ws = workspace(settings, alice.user)
    ws.mkdir(parents=True)
    (ws / "notes.txt").write_text("secret plan")
    upstream.enqueue(ToolCalls([("r1", "read", {"path": "notes.txt"}),
                                bash("b1", "touch x.txt")]), Text("ok"))
    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)
    denied = of_type(events, ev.TOOL_DENIED)[0]["data"]
    assert [c["id"] for c in denied["tool_calls"]] == ["b1"] and "readonly" in denied["reason"]
    assert [e["data"]["tool_use_id"] for e in of_type(events, ev.TOOL_USE)] == ["r1"]
    results = {e["data"]["tool_use_id"]: e["data"] for e in of_type(events, ev.TOOL_RESULT)}
    assert results["r1"] == {"tool_use_id": "r1", "tool_name": "read",
                             "content": "secret plan", "is_error": False}
    assert results["b1"]["is_error"] is True
    assert not (ws / "x.txt").exists()
    await comm.disconnect()


@pytest.mark.parametrize("mode, overrides, expected", [
    ("autonomous", {"bash": "deny"}, "denied"),
    ("autonomous", {"bash": "ask"}, "asked"),
    ("interactive", {"bash": "allow"}, "ran"),
    ("readonly", {"bash": "allow"}, "ran"),
    ("interactive", {}, "asked"),
])
async def test_an_override_beats_the_mode(alice, profile, upstream, mode, overrides, expected):
    await set_policy(mode, overrides)
    upstream.enqueue(ToolCalls([bash("c1", "echo hi")]), Text("end"))
    chat, comm = await start(alice)
    if expected == "asked":
        events = await receive_until(comm, ev.TOOL_REQUEST)
        await send(comm, {"type": "tool_approval", "data": {"approved": True}})  # Clotho form
        events += await receive_until(comm, ev.TURN_COMPLETE)
        assert of_type(events, ev.TOOL_RESULT)[0]["data"]["content"] == "hi"
    else:
        events = await receive_until(comm, ev.TURN_COMPLETE)
        result = of_type(events, ev.TOOL_RESULT)[0]["data"]
        assert of_type(events, ev.TOOL_REQUEST) == []
        assert (result["content"] == "hi") == (expected == "ran")
        assert bool(of_type(events, ev.TOOL_DENIED)) == (expected == "denied")
    await comm.disconnect()


async def test_three_fully_denied_rounds_in_a_row_end_the_turn(alice, profile, upstream):
    await set_policy("autonomous", {"bash": "deny"})
    upstream.enqueue(*[ToolCalls([bash(f"c{i}", "echo no")]) for i in range(5)])
    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert events[-1]["data"]["stop_reason"] == "tools_denied"
    assert len(of_type(events, ev.TOOL_DENIED)) == 3
    assert len(upstream.requests) == 3
    await comm.disconnect()


async def test_tool_rounds_are_capped(alice, profile, upstream, settings):
    settings.GATEWAY_MAX_TOOL_ROUNDS = 2
    await set_policy("autonomous")
    upstream.enqueue(*[ToolCalls([bash(f"c{i}", "echo again")]) for i in range(4)])
    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)
    assert events[-1]["data"]["stop_reason"] == "max_tool_rounds"
    assert len(of_type(events, ev.TOOL_RESULT)) == 2
    await wait_idle(chat.id)
    last = (await rows(chat))[-1]
    assert last.role == "tool"  # every call has its result: the history stays valid
    await comm.disconnect()


@pytest.mark.parametrize("args", [
    {"path": "../escape.txt", "content": "x"},
    {"path": "/tmp/escape.txt", "content": "x"},
    {"path": "sub/../../escape.txt", "content": "x"},
    {"path": "link/escape.txt", "content": "x"},
    {"path": "~/escape.txt", "content": "x"},
])
async def test_file_tools_refuse_paths_outside_the_workspace(alice, profile, upstream,
                                                             settings, tmp_path, args):
    await set_policy("autonomous")
    ws = workspace(settings, alice.user)
    ws.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (ws / "link").symlink_to(outside)
    upstream.enqueue(ToolCalls([("w1", "write", args)]), Text("ok"))
    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)
    result = of_type(events, ev.TOOL_RESULT)[0]["data"]
    assert result["is_error"] is True and "outside the workspace" in result["content"]
    assert not (outside / "escape.txt").exists()
    assert not (ws.parent / "escape.txt").exists()
    await comm.disconnect()


async def test_write_then_edit_then_read_inside_the_workspace(alice, profile, upstream,
                                                              settings):
    await set_policy("autonomous")
    upstream.enqueue(
        ToolCalls([("w", "write", {"path": "dir/f.txt", "content": "alpha beta"})]),
        ToolCalls([("e", "edit", {"path": "dir/f.txt", "old_string": "beta",
                                  "new_string": "gamma"})]),
        ToolCalls([("r", "read", {"path": "/workspace/dir/f.txt"})]),
        Text("done"))
    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)
    results = [e["data"] for e in of_type(events, ev.TOOL_RESULT)]
    assert [r["is_error"] for r in results] == [False, False, False]
    assert results[2]["content"] == "alpha gamma"
    assert (workspace(settings, alice.user) / "dir" / "f.txt").read_text() == "alpha gamma"
    await comm.disconnect()


async def test_invalid_tool_arguments_come_back_as_an_error_result(alice, profile, upstream):
    await set_policy("autonomous")
    upstream.enqueue(ToolCalls([("c1", "bash", '{"command": "echo')]), Text("sorry"))
    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)
    result = of_type(events, ev.TOOL_RESULT)[0]["data"]
    assert result["is_error"] is True and "not a valid JSON" in result["content"]
    assert of_type(events, ev.ERROR)[0]["data"]["code"] == "invalid_tool_call"
    assert text_of(events) == "sorry"
    await comm.disconnect()
