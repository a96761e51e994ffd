"""Revocation across server processes (PostgreSQL + Redis, two ``serve`` processes): a
token revoked through one process closes its sockets on the other with 4001, and the
approval the other process's turn waits for is not given by them (issue 16)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import pytest
import websockets

from tests.e2e.server import ROOT
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



def issue_token(server: Any, username: str) -> str:
    """A token from ``manage.py issue_token``, run beside the cluster's processes."""
    done = subprocess.run([sys.executable, "manage.py", "issue_token", username],
                          cwd=ROOT, env=server.env, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_a_token_or_user_changed_on_one_process_is_refused_by_the_other_at_once(
        cluster: Any) -> None:
    """Each process keeps the tokens it checked; a change through the other process
    reaches that cache at its next request (the version in Redis), not at some expiry."""
    first, second = cluster
    with first.client() as http:
        created = http.post("/api/tokens", json={"name": "elsewhere"}).json()
    carol, dave = issue_token(first, "carol"), issue_token(first, "dave")
    with second.client(created["token"]) as mine, second.client(carol) as hers, \
            second.client(dave) as his:
        for http in (mine, hers, his):  # checked, and now kept by the second process
            assert http.get("/api/chats").status_code == 200
        with first.client() as http:
            assert http.delete(f"/api/tokens/{created['id']}").status_code == 204
            assert http.patch("/api/users/carol", json={"is_active": False}).status_code == 200
        assert mine.get("/api/chats").status_code == 401
        assert hers.get("/api/chats").status_code == 401
        assert his.get("/api/chats").status_code == 200  # nobody changed his
