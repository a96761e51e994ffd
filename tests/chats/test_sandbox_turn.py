"""The sandbox config changes what a turn's `bash` can do, from the next tool call on; with
no configuration at all `bash` is sandboxed, and refuses to run when it cannot be."""

from __future__ import annotations

import shutil

import pytest
from channels.db import database_sync_to_async

import agents.sandbox as sandbox
from agents import events as ev
from permissions.models import PermissionPolicy
from tests.chats.wsutil import (
    connect,
    fresh_runtime,  # noqa: F401
    new_chat,
    of_type,
    receive_until,
    send,
)
from tests.conftest import need
from tests.fake_upstream import Text, ToolCalls

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_runtime")]

PROBE = "echo home=$HOME host=$(hostname)"


@database_sync_to_async
def put_sandbox(admin, **changes):
    response = admin.client.put("/api/config/sandbox", changes, format="json")
    assert response.status_code == 200, response.json()


@database_sync_to_async
def interactive():
    PermissionPolicy.objects.update_or_create(pk=1, defaults={"mode": "interactive"})


async def test_enabling_the_sandbox_applies_to_the_next_call_of_a_running_turn(
        alice, admin, profile, upstream, settings):
    need(shutil.which("bwrap") is not None, "bubblewrap is not installed")
    settings.GATEWAY_UNSANDBOXED_TOOLS = True  # the operator let the config turn it off
    await put_sandbox(admin, enabled=False)
    await interactive()
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": PROBE})]),
                     ToolCalls([("c2", "bash", {"command": PROBE})]), Text("done"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    await receive_until(comm, ev.TOOL_REQUEST)
    await send(comm, {"type": "tool_approval", "verdicts": {"c1": "allow"}})
    first = await receive_until(comm, ev.TOOL_REQUEST)
    # The admin turns the sandbox on while the turn waits for the second approval.
    await put_sandbox(admin, enabled=True)
    await send(comm, {"type": "tool_approval", "verdicts": {"c2": "allow"}})
    rest = await receive_until(comm, ev.TURN_COMPLETE)
    plain = of_type(first, ev.TOOL_RESULT)[0]["data"]["content"]
    boxed = of_type(rest, ev.TOOL_RESULT)[0]["data"]["content"]
    assert "home=/workspace" not in plain and "host=sandbox" not in plain
    assert boxed.strip() == "home=/workspace host=sandbox"
    await comm.disconnect()


async def test_without_bubblewrap_bash_refuses_the_file_tools_work_and_health_says_so(
        alice, admin, anon, profile, upstream, settings, monkeypatch):
    # No configuration at all: the sandbox is required by default.
    monkeypatch.setattr(sandbox, "_status_cache", {
        "available": False, "bwrap": None, "reason": "bwrap not found (test)",
        "process_limit": None, "prlimit": None, "chrt": None, "network": None})
    await database_sync_to_async(PermissionPolicy.objects.update_or_create)(
        pk=1, defaults={"mode": "autonomous"})
    marker = settings.GATEWAY_WORKSPACE / f"@{alice.user.pk}" / "ran.txt"
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "touch ran.txt"}),
                                ("c2", "write", {"path": "note.txt", "content": "kept"})]),
                     Text("ok"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    events = await receive_until(comm, ev.TURN_COMPLETE)
    result, written = (event["data"] for event in of_type(events, ev.TOOL_RESULT))
    assert result["is_error"] is True
    assert "sandbox unavailable: bwrap not found (test)" in result["content"]
    assert "apt-get install bubblewrap" in result["content"]
    assert "GATEWAY_UNSANDBOXED_TOOLS=true" in result["content"]
    assert not marker.exists()
    assert written["is_error"] is False
    assert (marker.parent / "note.txt").read_text() == "kept"
    health = (await database_sync_to_async(anon.get)("/health")).json()
    assert health["status"] == "degraded"
    assert health["sandbox"] == {"tools": "unavailable", "enabled": True, "available": False,
                                 "reason": "bwrap not found (test)", "network": False}
    await comm.disconnect()
