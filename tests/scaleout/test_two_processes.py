"""Two server processes on PostgreSQL + Redis behave like one."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import websockets

from tests.fake_upstream import Text, ToolCalls

WORDS = "one two three four five six seven eight nine ten"


async def open_socket(server, chat_id: str, since: int | None = None):
    url = f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}"
    if since is not None:
        url += f"&since={since}"
    ws = await websockets.connect(url)
    state = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert state["type"] == "agent.state"
    return ws, state


async def read_until(ws, event_type: str, timeout: float = 15) -> list[dict]:
    got = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        got.append(event)
        if event["type"] == event_type:
            return got


def new_chat(server) -> str:
    with server.client() as http:
        return http.post("/api/chats").json()["chat_id"]


def set_mode(server, mode: str) -> None:
    with server.client() as http:
        assert http.put("/api/permissions", json={"mode": mode}).status_code == 200


def contiguous(events: list[dict]) -> bool:
    seqs = [e["seq"] for e in events]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_sockets_on_two_processes_see_every_event_and_either_approves(cluster, upstream):
    a, b = cluster
    set_mode(a, "interactive")
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "echo across"})]),
                     Text(WORDS, chunk_size=4))
    chat_id = new_chat(a)

    async def scenario():
        ws_a, _ = await open_socket(a, chat_id)
        ws_b, _ = await open_socket(b, chat_id)
        await ws_a.send(json.dumps({"type": "user_message", "content": "go"}))
        first_a = await read_until(ws_a, "agent.tool_request")
        first_b = await read_until(ws_b, "agent.tool_request")
        await ws_b.send(json.dumps({"type": "tool_approval", "verdicts": {"c1": "allow"}}))
        rest_a = await read_until(ws_a, "agent.turn_complete")
        rest_b = await read_until(ws_b, "agent.turn_complete")
        await ws_a.close()
        await ws_b.close()
        return first_a + rest_a, first_b + rest_b

    seen_a, seen_b = asyncio.run(scenario())
    assert seen_a == seen_b
    assert contiguous(seen_a)
    result = next(e for e in seen_a if e["type"] == "agent.tool_result")["data"]
    assert result["content"] == "across" and result["is_error"] is False
    assert "".join(e["data"]["text"] for e in seen_a if e["type"] == "agent.text_delta") \
        == WORDS


def test_cancel_sent_through_the_other_process_stops_the_turn(cluster, upstream):
    a, b = cluster
    release = threading.Event()
    upstream.enqueue(Text(WORDS, pause_after=2, release=release))
    chat_id = new_chat(a)

    async def scenario():
        ws_a, _ = await open_socket(a, chat_id)
        await ws_a.send(json.dumps({"type": "user_message", "content": "go"}))
        await read_until(ws_a, "agent.text_delta")
        with b.client() as http:
            assert http.post(f"/api/chats/{chat_id}/cancel").json() == {"cancelled": True}
        events = await read_until(ws_a, "agent.cancelled")
        await ws_a.close()
        return events

    try:
        events = asyncio.run(scenario())
    finally:
        release.set()
    assert events[-1]["type"] == "agent.cancelled"


def test_messages_sent_to_both_processes_at_once_run_one_turn_at_a_time(cluster, upstream):
    a, b = cluster
    for i in range(6):
        upstream.enqueue(Text(f"answer {i} " + WORDS, chunk_size=3, delay=0.002))
    chat_id = new_chat(a)

    async def scenario():
        ws_a, _ = await open_socket(a, chat_id)
        ws_b, _ = await open_socket(b, chat_id)
        sends = []
        for i in range(3):
            sends.append(ws_a.send(json.dumps({"type": "user_message", "content": f"a{i}"})))
            sends.append(ws_b.send(json.dumps({"type": "user_message", "content": f"b{i}"})))
        await asyncio.gather(*sends)
        events = []
        while len([e for e in events if e["type"] == "agent.turn_complete"]) < 6:
            events += await read_until(ws_a, "agent.turn_complete", timeout=30)
        await ws_a.close()
        await ws_b.close()
        return events

    events = asyncio.run(scenario())
    assert contiguous(events)
    # Turns never overlap: started and complete alternate strictly.
    marks = [e["type"] for e in events if e["type"] in ("agent.turn_started",
                                                        "agent.turn_complete")]
    assert marks == ["agent.turn_started", "agent.turn_complete"] * 6
    with a.client() as http:
        messages = http.get(f"/api/chats/{chat_id}").json()["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["user", "assistant"] * 6
    assert sorted(m["content"] for m in messages if m["role"] == "user") == \
        ["a0", "a1", "a2", "b0", "b1", "b2"]


def test_a_killed_process_turn_is_recovered_by_the_other(cluster, upstream):
    a, b = cluster
    release = threading.Event()
    upstream.enqueue(Text(WORDS, pause_after=2, release=release), Text("after recovery"))
    chat_id = new_chat(a)

    async def start_on_a():
        ws, _ = await open_socket(a, chat_id)
        await ws.send(json.dumps({"type": "user_message", "content": "first"}))
        events = await read_until(ws, "agent.text_delta")
        await ws.send(json.dumps({"type": "user_message", "content": "queued"}))
        events += await read_until(ws, "agent.queued")
        return events

    try:
        seen = asyncio.run(start_on_a())
        a.kill()  # kill -9 while the turn streams and a message waits
    finally:
        release.set()

    async def watch_on_b():
        ws, state = await open_socket(b, chat_id, since=seen[-1]["seq"])
        events = await read_until(ws, "agent.turn_complete", timeout=30)
        await ws.close()
        return state, events

    state, events = asyncio.run(watch_on_b())
    errors = [e["data"] for e in events if e["type"] == "agent.error"]
    assert errors and errors[0]["code"] == "interrupted"
    text = "".join(e["data"]["text"] for e in events if e["type"] == "agent.text_delta")
    assert text == "after recovery"
    with b.client() as http:
        # The turn's lock goes right after its turn_complete (the drain's last look).
        deadline = time.monotonic() + 10
        while http.get("/health").json()["active_turns"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert http.get("/health").json()["active_turns"] == 0
        detail = http.get(f"/api/chats/{chat_id}").json()
    roles = [(m["role"], m["status"]) for m in detail["messages"]]
    assert roles == [("user", "done"), ("assistant", "interrupted"), ("user", "done"),
                     ("assistant", "done")]
    assert detail["queued"] == [] and detail["running"] is False


