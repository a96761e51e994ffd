"""Revocation across server processes (PostgreSQL + Redis, two ``serve`` processes): a
token revoked through one process closes its sockets on the other with 4001, and the
approval the other process's turn waits for is not given by them (issue 16)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from tests.fake_upstream import Text, ToolCalls
from tests.scaleout.conftest import cluster, pg_url, redis_url  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(180)


async def close_code(ws: Any, timeout: float = 5) -> int:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else 1006


async def until(ws: Any, event_type: str) -> dict[str, Any]:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 15))
        if event["type"] == event_type:
            return event


def test_revoking_on_one_process_closes_the_sockets_on_the_other(cluster: Any,
                                                                  upstream: Any) -> None:
    first, second = cluster
    with first.client() as http:
        assert http.put("/api/permissions", json={"mode": "interactive"}).status_code == 200
        created = http.post("/api/tokens", json={"name": "elsewhere"}).json()
        chat_id = http.post("/api/chats", json={}).json()["chat_id"]
        idle_chat = http.post("/api/chats", json={}).json()["chat_id"]
    upstream.enqueue(ToolCalls([("call-x", "bash", {"command": "echo ran > proof"})]),
                     Text("done"))
    token = created["token"]

    async def scenario() -> tuple[list[int], list[str]]:
        on_second = f"{second.ws_url}/ws/{{}}?token={token}"
        async with websockets.connect(on_second.format(chat_id)) as asker, \
                websockets.connect(on_second.format(idle_chat)) as idle:
            await asker.recv()
            await idle.recv()
            await asker.send(json.dumps({"type": "user_message", "content": "run it"}))
            await until(asker, "agent.tool_request")  # the turn runs on the second process
            with first.client() as http:
                assert http.delete(f"/api/tokens/{created['id']}").status_code == 204
            codes = [await close_code(idle)]  # told through Redis, sent nothing
            try:
                await asker.send(json.dumps({"type": "tool_approval",
                                             "verdicts": {"call-x": "allow"}}))
            except websockets.ConnectionClosed:
                pass
            codes.append(await close_code(asker))
        url = f"{first.ws_url}/ws/{chat_id}?token={first.admin_token}"
        async with websockets.connect(url) as watcher:
            state = json.loads(await watcher.recv())
            await watcher.send(json.dumps({"type": "cancel"}))
            await until(watcher, "agent.cancelled")
        return codes, [c["id"] for c in state["data"]["pending_tool_calls"]]

    codes, pending = asyncio.run(scenario())

    assert codes == [4001, 4001]
    assert pending == ["call-x"]
    assert not list(first.data_dir.parent.rglob("proof"))
