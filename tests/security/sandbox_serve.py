"""A real ``serve`` with a member, and one ``bash`` call of that member over a real socket.

Shared by the sandbox modules of ``tests/security``: every attack there runs the way a
member would run it, through the model's tool call, the permission prompt the member
answers himself, and the server's own sandbox set-up.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import websockets

from tests.conftest import need
from tests.e2e.server import ROOT, ServeProcess
from tests.fake_upstream import FakeUpstream, Text, ToolCalls


def need_bubblewrap() -> None:
    need(shutil.which("bwrap") is not None, "bubblewrap (bwrap) is not installed")


def start_server(data_dir: Path, upstream: FakeUpstream,
                 env: dict[str, str] | None = None, from_template: bool = True
                 ) -> ServeProcess:
    """A fresh server with no configuration at all but a profile on the fake upstream.
    ``from_template=False``: its database is migrated by ``serve`` itself."""
    server = ServeProcess(data_dir, env=env, from_template=from_template
                          ).start(timeout=120)  # a loaded shared machine
    with server.client() as http:
        created = http.post("/api/profiles", json={"name": "fake", "profile": {
            "provider": "openai", "model": "fake-model", "base_url": upstream.url,
            "api_key": "sk-security-1234"}})
        assert created.status_code == 201, created.text
    return server


def add_member(server: ServeProcess, username: str) -> str:
    """Create a member (not staff) the way an operator does; returns the member's token."""
    done = subprocess.run([sys.executable, "manage.py", "issue_token", username],
                          cwd=ROOT, env=server.env, capture_output=True, text=True,
                          check=True)
    return done.stdout.strip().splitlines()[-1]


def user_id(server: ServeProcess, username: str) -> int:
    with sqlite3.connect(server.data_dir / "gateway.sqlite3") as db:
        row = db.execute("select id from auth_user where username = ?", (username,)).fetchone()
    return int(row[0])


def set_sandbox(server: ServeProcess, **changes: object) -> None:
    with server.client() as http:
        answer = http.put("/api/config/sandbox", json=changes)
        assert answer.status_code == 200, answer.text


async def _read_until(ws: websockets.WebSocketClientProtocol, kind: str) -> list[dict]:
    got = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 60))
        got.append(event)
        if event["type"] == kind:
            return got


def run_bash(server: ServeProcess, upstream: FakeUpstream, token: str, command: str) -> dict:
    """The member asks, the model calls ``bash`` with ``command``, the member approves
    (in ``interactive`` mode he answers his own prompt); returns the tool result data."""
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": command})]), Text("done"))
    with server.client(token) as http:
        chat_id = http.post("/api/chats", json={"title": "attack"}).json()["chat_id"]

    async def scenario() -> list[dict]:
        async with websockets.connect(f"{server.ws_url}/ws/{chat_id}?token={token}") as ws:
            await ws.recv()  # agent.state
            await ws.send(json.dumps({"type": "user_message", "content": "run it"}))
            events = await _read_until(ws, "agent.tool_request")
            await ws.send(json.dumps({"type": "tool_approval", "verdicts": {"c1": "allow"}}))
            return events + await _read_until(ws, "agent.turn_complete")

    events = asyncio.run(scenario())
    return next(e for e in events if e["type"] == "agent.tool_result")["data"]
