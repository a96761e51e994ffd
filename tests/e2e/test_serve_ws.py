"""End to end: a real ``serve`` process, the ``websockets`` client, the fake upstream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets

from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream, Text, ToolCalls


@pytest.fixture
def server(tmp_path: Path, upstream: FakeUpstream):
    with ServeProcess(tmp_path / "data") as proc:
        with proc.client() as http:
            assert http.post("/api/profiles", json={"name": "fake", "profile": {
                "provider": "openai", "model": "fake-model", "base_url": upstream.url,
                "api_key": "sk-e2e-9876"}}).status_code == 201
        yield proc


async def read_until(ws, event_type: str) -> list[dict]:
    got = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        got.append(event)
        if event["type"] == event_type:
            return got


def test_a_turn_with_an_approved_tool_call_over_a_real_socket(server, upstream):
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "echo from-e2e"})]),
                     Text("The command printed from-e2e.", chunk_size=5))
    with server.client() as http:
        chat_id = http.post("/api/chats", json={"title": "e2e"}).json()["chat_id"]

    async def scenario() -> list[dict]:
        async with websockets.connect(f"{server.ws_url}/ws/{chat_id}?token="
                                      f"{server.admin_token}") as ws:
            state = json.loads(await ws.recv())
            assert state["type"] == "agent.state" and state["data"]["running"] is False
            await ws.send(json.dumps({"type": "user_message", "content": "run it"}))
            events = await read_until(ws, "agent.tool_request")
            await ws.send(json.dumps({"type": "tool_approval", "verdicts": {"c1": "allow"}}))
            return events + await read_until(ws, "agent.turn_complete")

    events = asyncio.run(scenario())
    result = next(e for e in events if e["type"] == "agent.tool_result")["data"]
    assert result["content"] == "from-e2e" and result["is_error"] is False
    text = "".join(e["data"]["text"] for e in events if e["type"] == "agent.text_delta")
    assert text == "The command printed from-e2e."
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert upstream.auth_headers[-1] == "Bearer sk-e2e-9876"
    with server.client() as http:
        detail = http.get(f"/api/chats/{chat_id}").json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant", "tool", "assistant"]


def test_a_wrong_token_is_closed_with_4001(server):
    with server.client() as http:
        chat_id = http.post("/api/chats").json()["chat_id"]

    async def scenario() -> int:
        async with websockets.connect(f"{server.ws_url}/ws/{chat_id}?token=nope") as ws:
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code
        return 0

    assert asyncio.run(scenario()) == 4001
