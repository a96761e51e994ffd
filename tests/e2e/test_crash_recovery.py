"""kill -9 of the server mid-turn, restart on the same data: the chat is consistent, pending
approvals are expired, queued messages run, reconnecting clients are told."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
import websockets

from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream, Text, ToolCalls

WORDS = "one two three four five six seven eight"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def first_start(data_dir: Path, upstream: FakeUpstream, mode: str) -> ServeProcess:
    server = ServeProcess(data_dir).start()
    with server.client() as http:
        assert http.post("/api/profiles", json={"name": "fake", "profile": {
            "provider": "openai", "model": "fake-model", "base_url": upstream.url}}
        ).status_code == 201
        assert http.put("/api/permissions", json={"mode": mode}).status_code == 200
    return server


def restart(old: ServeProcess) -> ServeProcess:
    fresh = ServeProcess(old.data_dir, port=old.port)
    fresh.admin_token = old.admin_token
    return fresh.start()


async def connect(server: ServeProcess, chat_id: str, since: int | None = None):
    url = f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}"
    ws = await websockets.connect(url + (f"&since={since}" if since is not None else ""))
    state = json.loads(await asyncio.wait_for(ws.recv(), 10))
    return ws, state


async def read_until(ws, event_type: str, timeout: float = 15) -> list[dict]:
    got = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        got.append(event)
        if event["type"] == event_type:
            return got


def start_turn(server: ServeProcess, chat_id: str, until: str, queue_another: bool = False
               ) -> list[dict]:
    async def go() -> list[dict]:
        ws, _ = await connect(server, chat_id)
        await ws.send(json.dumps({"type": "user_message", "content": "first"}))
        events = await read_until(ws, until)
        if queue_another:
            await ws.send(json.dumps({"type": "user_message", "content": "second"}))
            events += await read_until(ws, "agent.queued")
        await ws.close()
        return events

    return asyncio.run(go())


def messages(server: ServeProcess, chat_id: str) -> dict:
    with server.client() as http:
        return http.get(f"/api/chats/{chat_id}").json()


def assert_every_tool_call_answered(detail: dict) -> None:
    calls = [c["id"] for m in detail["messages"] if m["role"] == "assistant"
             for c in m.get("tool_calls", [])]
    answered = [m["tool_call_id"] for m in detail["messages"] if m["role"] == "tool"]
    assert sorted(calls) == sorted(answered)


def test_a_crash_while_streaming_is_settled_and_the_queued_message_runs(data_dir, upstream):
    server = first_start(data_dir, upstream, "interactive")
    release = threading.Event()
    upstream.enqueue(Text(WORDS, pause_after=3, release=release), Text("second answer"))
    with server.client() as http:
        chat_id = http.post("/api/chats").json()["chat_id"]
    try:
        seen = start_turn(server, chat_id, "agent.text_delta", queue_another=True)
        server.kill()
    finally:
        release.set()
    server = restart(server)
    try:
        async def reconnect():
            ws, state = await connect(server, chat_id, since=seen[-1]["seq"])
            events = await read_until(ws, "agent.turn_complete")
            await ws.close()
            return state, events

        state, events = asyncio.run(reconnect())
        assert state["data"]["replay_complete"] is False  # events after the crash are new
        errors = [e["data"] for e in events if e["type"] == "agent.error"]
        assert errors[0]["code"] == "interrupted"
        assert min(e["seq"] for e in events) > seen[-1]["seq"]
        text = "".join(e["data"]["text"] for e in events if e["type"] == "agent.text_delta")
        assert text == "second answer"
        detail = messages(server, chat_id)
        assert [(m["role"], m["status"]) for m in detail["messages"]] == [
            ("user", "done"), ("assistant", "interrupted"), ("user", "done"),
            ("assistant", "done")]
    finally:
        server.stop()


def test_a_crash_while_waiting_for_approval_expires_it_and_the_chat_goes_on(data_dir,
                                                                           upstream):
    server = first_start(data_dir, upstream, "interactive")
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "echo never"})]), Text("fresh"))
    with server.client() as http:
        chat_id = http.post("/api/chats").json()["chat_id"]
    start_turn(server, chat_id, "agent.tool_request")
    server.kill()
    server = restart(server)
    try:
        deadline = time.monotonic() + 10
        while messages(server, chat_id)["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        detail = messages(server, chat_id)
        assert detail["running"] is False
        assert_every_tool_call_answered(detail)
        tool = next(m for m in detail["messages"] if m["role"] == "tool")
        assert tool["is_error"] is True and "Interrupted" in tool["content"]

        async def state_after():
            ws, state = await connect(server, chat_id)
            await ws.send(json.dumps({"type": "user_message", "content": "again"}))
            events = await read_until(ws, "agent.turn_complete")
            await ws.close()
            return state, events

        state, events = asyncio.run(state_after())
        assert state["data"]["pending_tool_calls"] == []
        assert "".join(e["data"]["text"] for e in events
                       if e["type"] == "agent.text_delta") == "fresh"
    finally:
        server.stop()


def test_a_crash_while_a_tool_runs_leaves_a_result_for_the_call(data_dir, upstream):
    server = first_start(data_dir, upstream, "autonomous")
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "sleep 20; echo late"})]),
                     Text("after"))
    with server.client() as http:
        chat_id = http.post("/api/chats").json()["chat_id"]
    start_turn(server, chat_id, "agent.turn_started")
    time.sleep(1.0)  # the tool is running now
    server.kill()
    server = restart(server)
    try:
        deadline = time.monotonic() + 10
        while messages(server, chat_id)["running"] and time.monotonic() < deadline:
            time.sleep(0.1)
        detail = messages(server, chat_id)
        assert_every_tool_call_answered(detail)
        assert detail["messages"][-1]["status"] == "interrupted"
    finally:
        server.stop()
