"""MCP tools, skills and identity files in real turns: a stdio MCP server written with the
SDK (tests/agents/mcp_echo_server.py) connected at start-up, its tool offered to the model,
called through the approval flow, its result streamed; failing servers reported."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async

from agents import events as ev
from mcp_servers import runtime
from mcp_servers.models import McpServer
from permissions.models import PermissionPolicy
from tests.chats.wsutil import (
    connect,
    fresh_runtime,  # noqa: F401
    new_chat,
    of_type,
    receive_until,
    send,
    text_of,
)
from tests.fake_upstream import Text, ToolCalls

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_runtime")]

SERVER = Path(__file__).parent.parent / "agents" / "mcp_echo_server.py"


@pytest.fixture(autouse=True)
async def mcp_runtime(settings: Any, tmp_path: Path) -> AsyncIterator[None]:
    """This process's MCP manager starts clean and is stopped (its servers too) after."""
    settings.GATEWAY_SKILLS_DIR = tmp_path / "skills"
    await runtime.shutdown()
    yield
    await runtime.shutdown()


@database_sync_to_async
def add_server(name: str, *args: str, **fields: Any) -> McpServer:
    return McpServer.objects.create(name=name, transport="stdio", command=sys.executable,
                                    args=[str(SERVER), *args], **fields)


@database_sync_to_async
def set_policy(mode: str, overrides: dict | None = None) -> None:
    PermissionPolicy.objects.update_or_create(pk=1, defaults={
        "mode": mode, "tool_overrides": overrides or {}})


def offered(request: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in request.get("tools", [])]


async def start(actor: Any, text: str = "go") -> Any:
    chat = await new_chat(actor.user)
    comm, _ = await connect(chat.id, actor.token)
    await send(comm, {"type": "user_message", "content": text})
    return chat, comm


async def test_an_mcp_tool_is_called_through_the_approval_flow_and_its_result_streamed(
        alice, profile, upstream) -> None:
    await add_server("echo")
    await runtime.ensure_started()  # what the first request does at start-up
    assert runtime.current().statuses()["echo"]["state"] == "connected"
    await set_policy("interactive")
    upstream.enqueue(ToolCalls([("m1", "echo__echo", {"text": "hi"})]),
                     Text("The server said hi back."))

    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TOOL_REQUEST)

    assert events[-1]["data"]["tool_calls"] == [
        {"id": "m1", "name": "echo__echo", "arguments": {"text": "hi"}}]
    assert await comm.receive_nothing(timeout=0.3)  # nothing runs before the verdict
    first = upstream.requests[0]
    assert {"bash", "read", "write", "edit", "echo__echo", "echo__greet"} <= set(offered(first))
    assert "- `echo__echo`: [MCP server echo] Echo the text back." \
        in first["messages"][0]["content"]

    await send(comm, {"type": "tool_approval", "verdicts": {"m1": "allow"}})
    events = await receive_until(comm, ev.TURN_COMPLETE)

    assert of_type(events, ev.TOOL_RESULT)[0]["data"] == {
        "tool_use_id": "m1", "tool_name": "echo__echo", "content": "echo: hi",
        "is_error": False}
    assert text_of(events) == "The server said hi back."
    assert events[-1]["data"]["stop_reason"] == "end_turn"
    assert upstream.requests[-1]["messages"][-1] == {
        "role": "tool", "tool_call_id": "m1", "content": "echo: hi"}
    await comm.disconnect()


async def test_a_failing_mcp_call_is_reported_and_the_turn_goes_on(alice, profile,
                                                                   upstream) -> None:
    # Not started by hand: the turn itself starts the manager and connects the server.
    await add_server("echo")
    await set_policy("autonomous")
    upstream.enqueue(ToolCalls([("d1", "echo__die", {})]), Text("It crashed, sorry."))

    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)

    error = of_type(events, ev.ERROR)[0]["data"]
    assert error["code"] == "tool_failed"
    assert "echo__die" in error["message"] and "'echo'" in error["message"]
    result = of_type(events, ev.TOOL_RESULT)[0]["data"]
    assert result["is_error"] is True and result["tool_name"] == "echo__die"
    assert text_of(events) == "It crashed, sorry."
    assert events[-1]["data"]["stop_reason"] == "end_turn"
    await comm.disconnect()


async def test_a_server_that_fails_to_start_is_reported_and_skipped(alice, profile, upstream,
                                                                    anon) -> None:
    await add_server("broken", "--crash")
    await add_server("echo")
    await runtime.ensure_started()
    upstream.enqueue(Text("fine"))

    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)

    assert text_of(events) == "fine"
    tools = offered(upstream.requests[0])
    assert "echo__echo" in tools and not any(t.startswith("broken__") for t in tools)
    health = (await sync_to_async(anon.get)("/health")).json()
    assert health["status"] == "degraded"
    assert health["mcp"]["echo"]["state"] == "connected"
    assert health["mcp"]["broken"]["state"] in ("error", "restarting")
    assert "cannot start" in health["mcp"]["broken"]["message"]
    await comm.disconnect()


@pytest.mark.parametrize("mode, overrides, expected", [
    ("interactive", {"echo__echo": "allow"}, "ran"),
    ("autonomous", {"echo__echo": "deny"}, "denied"),
    ("readonly", {}, "denied"),
])
async def test_the_permission_policy_applies_to_mcp_tools(alice, profile, upstream, mode,
                                                          overrides, expected) -> None:
    await add_server("echo")
    await runtime.ensure_started()
    await set_policy(mode, overrides)
    upstream.enqueue(ToolCalls([("m1", "echo__echo", {"text": "x"})]), Text("ok"))

    chat, comm = await start(alice)
    events = await receive_until(comm, ev.TURN_COMPLETE)

    assert of_type(events, ev.TOOL_REQUEST) == []
    result = of_type(events, ev.TOOL_RESULT)[0]["data"]
    assert (result["content"] == "echo: x") == (expected == "ran")
    assert bool(of_type(events, ev.TOOL_DENIED)) == (expected == "denied")
    await comm.disconnect()


async def test_mcp_tools_are_listed_and_may_get_overrides(admin) -> None:
    await add_server("echo", tool_prefix="fs")
    await runtime.ensure_started()

    listed = (await sync_to_async(admin.client.get)("/api/permissions/tools")).json()["tools"]
    assert listed[:4] == ["bash", "read", "write", "edit"] and "fs__echo" in listed
    response = await sync_to_async(admin.client.put)(
        "/api/permissions", {"tool_overrides": {"fs__echo": "allow"}}, format="json")
    assert response.status_code == 200
    assert response.json()["tool_overrides"] == {"fs__echo": "allow"}


async def test_skills_are_read_on_demand_and_identity_files_seeded(alice, profile, upstream,
                                                                  settings) -> None:
    skill = Path(settings.GATEWAY_SKILLS_DIR) / "haiku"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text("---\nname: haiku\ndescription: Write a haiku.\n---\n"
                                    "Count five, seven, five syllables.\n")
    await set_policy("readonly")  # `read` is allowed in every mode
    upstream.enqueue(ToolCalls([("r1", "read", {"path": ".skills/haiku/SKILL.md"})]),
                     Text("done"))

    chat, comm = await start(alice, "write a haiku")
    events = await receive_until(comm, ev.TURN_COMPLETE)

    prompt = upstream.requests[0]["messages"][0]["content"]
    assert "- haiku: Write a haiku. (read `.skills/haiku/SKILL.md`)" in prompt
    assert "Count five" not in prompt
    assert "Count five, seven, five" in of_type(events, ev.TOOL_RESULT)[0]["data"]["content"]
    workspace = Path(settings.GATEWAY_WORKSPACE) / f"@{alice.user.pk}"
    assert sorted(p.name for p in workspace.glob("*.md")) == ["AGENTS.md", "PERSONALITY.md",
                                                             "USER.md"]
    assert "Read them with `read`" in prompt
    await comm.disconnect()


async def test_admins_see_the_system_prompt_and_members_do_not(admin, alice, profile,
                                                               upstream) -> None:
    await add_server("echo")
    upstream.enqueue(Text("hello"))
    chat, comm = await start(admin)
    await receive_until(comm, ev.TURN_COMPLETE)
    await comm.disconnect()

    body = (await sync_to_async(admin.client.get)(f"/api/chats/{chat.id}")).json()

    assert body["system_prompt"] == upstream.requests[0]["messages"][0]["content"]
    assert "echo__echo" in body["system_prompt"]
    assert all(m["role"] != "system" for m in body["messages"])
    own = await new_chat(alice.user)
    member_view = (await sync_to_async(alice.client.get)(f"/api/chats/{own.id}")).json()
    assert "system_prompt" not in member_view
