"""The agent's own writes count against its user's workspace quota: `write` and `edit`
refuse with a tool error naming the quota and store nothing; `bash` cannot be checked
before it runs, so its result says when the workspace went over. Through the real
consumer and turn runner, the fake upstream over real HTTP making the model call the
tools, with the sandbox on (the default) and off."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async

from agents import events as ev
from agents import fs, identity
from chats.store import workspace_for
from permissions.models import PermissionPolicy, SandboxConfig
from tests.chats.wsutil import (
    connect,
    fresh_runtime,  # noqa: F401
    new_chat,
    of_type,
    receive_until,
    send,
    wait_idle,
)
from tests.conftest import need
from tests.fake_upstream import Text, ToolCalls

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_runtime")]


@pytest.fixture(params=["sandboxed", "unsandboxed"])
def sandbox(request: Any, settings: Any) -> str:
    """Tools run in bubblewrap (the default) or, by the operator's leave, without it."""
    if request.param == "sandboxed":
        need(shutil.which("bwrap") is not None, "bubblewrap is not installed")
    else:
        settings.GATEWAY_UNSANDBOXED_TOOLS = True
    SandboxConfig.objects.update_or_create(pk=1, defaults={
        "enabled": request.param == "sandboxed"})
    PermissionPolicy.objects.update_or_create(pk=1, defaults={"mode": "autonomous",
                                                              "tool_overrides": {}})
    return request.param


def workspace(alice: Any) -> Path:
    """Alice's workspace, with the identity files a turn seeds (they count too)."""
    root = workspace_for(alice.user)
    root.mkdir(parents=True, exist_ok=True)
    identity.seed(root)
    return root


def files_in(alice: Any) -> list[str]:
    return sorted(str(p.relative_to(workspace(alice))) for p in workspace(alice).rglob("*"))


@database_sync_to_async
def set_quota(admin: Any, alice: Any, **more: int) -> None:
    """Alice's quota: what her workspace holds now plus ``more`` bytes or files."""
    with fs.Workspace(workspace(alice)) as ws:
        used = ws.usage()
    body = {"quota_bytes": used.bytes + more["bytes"]} if "bytes" in more else {}
    if "files" in more:
        body["quota_files"] = used.files + more["files"]
    response = admin.client.put(f"/api/files/quota?user={alice.user.pk}", body,
                                format="json")
    assert response.status_code == 200, response.content


async def run(alice: Any, upstream: Any, *calls: tuple) -> tuple[list[dict], dict]:
    """One turn in which the model calls ``calls``, then answers; the tool results by id."""
    upstream.enqueue(ToolCalls(list(calls)), Text("done"))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "go"})
    events = await receive_until(comm, ev.TURN_COMPLETE, timeout=30)
    await wait_idle(chat.id)
    await comm.disconnect()
    return events, {e["data"]["tool_use_id"]: e["data"] for e in of_type(events, ev.TOOL_RESULT)}


async def test_a_write_over_the_quota_is_a_tool_error_and_writes_nothing(
        admin, alice, profile, upstream, sandbox):
    (workspace(alice) / "kept.txt").write_bytes(b"k" * 40)
    await set_quota(admin, alice, bytes=60)
    before = files_in(alice)

    events, results = await run(alice, upstream,
                                ("w1", "write", {"path": "big/new.txt", "content": "x" * 61}))

    result = results["w1"]
    assert result["is_error"] is True
    assert "quota" in result["content"] and "would hold" in result["content"]
    assert "Nothing was written" in result["content"]
    assert files_in(alice) == before
    assert of_type(events, ev.FILES_CHANGED) == []
    # The model was told, in the tool result it got back.
    told = upstream.requests[-1]["messages"][-1]
    assert told["role"] == "tool" and "quota" in told["content"]


async def test_a_write_that_fits_and_one_replacing_a_file_give_the_old_bytes_back(
        admin, alice, profile, upstream, sandbox):
    (workspace(alice) / "a.txt").write_bytes(b"a" * 80)
    await set_quota(admin, alice, bytes=20)

    _, results = await run(alice, upstream,
                           ("w1", "write", {"path": "a.txt", "content": "b" * 90}),
                           ("w2", "write", {"path": "c.txt", "content": "c" * 11}),
                           ("w3", "write", {"path": "d.txt", "content": "d" * 10}))

    assert results["w1"]["is_error"] is False
    assert results["w2"]["is_error"] is True and "quota" in results["w2"]["content"]
    assert results["w3"]["is_error"] is False
    assert (workspace(alice) / "a.txt").read_bytes() == b"b" * 90
    assert not (workspace(alice) / "c.txt").exists()


async def test_the_file_count_is_held_to_the_quota_too(admin, alice, profile, upstream,
                                                       sandbox):
    (workspace(alice) / "one.txt").write_text("1")
    await set_quota(admin, alice, files=0)
    before = files_in(alice)

    _, results = await run(alice, upstream,
                           ("w1", "write", {"path": "two.txt", "content": "2"}),
                           ("w2", "write", {"path": "one.txt", "content": "one"}))

    assert results["w1"]["is_error"] is True and "quota" in results["w1"]["content"]
    assert results["w2"]["is_error"] is False
    assert files_in(alice) == before and (workspace(alice) / "one.txt").read_text() == "one"


async def test_an_edit_that_would_pass_the_quota_leaves_the_file_as_it_was(
        admin, alice, profile, upstream, sandbox):
    (workspace(alice) / "notes.txt").write_text("short text")
    await set_quota(admin, alice, bytes=40)

    _, results = await run(alice, upstream,
                           ("e1", "edit", {"path": "notes.txt", "old_string": "short",
                                           "new_string": "long " * 20}),
                           ("e2", "edit", {"path": "notes.txt", "old_string": "short",
                                           "new_string": "brief"}))

    assert results["e1"]["is_error"] is True and "quota" in results["e1"]["content"]
    assert results["e2"]["is_error"] is False
    assert (workspace(alice) / "notes.txt").read_text() == "brief text"


async def test_bash_is_not_stopped_but_says_when_the_workspace_went_over(
        admin, alice, profile, upstream, sandbox):
    await set_quota(admin, alice, bytes=100)

    _, results = await run(alice, upstream,
                           ("b0", "bash", {"command": "hostname"}),
                           ("b1", "bash", {"command": "head -c 50 /dev/zero > half; echo ok"}),
                           ("b2", "bash", {"command": "head -c 500 /dev/zero > big; echo ok"}),
                           ("w1", "write", {"path": "more.txt", "content": "m"}))

    assert (results["b0"]["content"].strip() == "sandbox") == (sandbox == "sandboxed")
    assert results["b1"]["content"] == "ok"
    assert results["b2"]["is_error"] is False
    assert results["b2"]["content"].startswith("ok\n")
    assert "over its quota" in results["b2"]["content"]
    assert (workspace(alice) / "big").stat().st_size == 500
    assert results["w1"]["is_error"] is True and "quota" in results["w1"]["content"]


async def test_without_an_own_quota_the_default_applies_to_the_agent(
        alice, profile, upstream, sandbox, settings):
    with fs.Workspace(workspace(alice)) as ws:
        settings.GATEWAY_FILES_QUOTA_BYTES = ws.usage().bytes + 20

    _, results = await run(alice, upstream,
                           ("w1", "write", {"path": "x.txt", "content": "x" * 21}),
                           ("w2", "write", {"path": "y.txt", "content": "y" * 20}))

    assert results["w1"]["is_error"] is True
    assert f"quota is {settings.GATEWAY_FILES_QUOTA_BYTES} bytes" in results["w1"]["content"]
    assert results["w2"]["is_error"] is False
