"""Each process caches the configuration a turn reads; a save on one process reaches the
turns of the other at once (the version in Redis), with no restart."""

from __future__ import annotations

import asyncio
import json

from tests.fake_upstream import Text, ToolCalls
from tests.scaleout.test_two_processes import new_chat, open_socket, read_until, set_mode


def turn(server, chat_id: str, content: str = "go", until: str = "agent.turn_complete"
         ) -> list[dict]:
    async def go() -> list[dict]:
        ws, _ = await open_socket(server, chat_id)
        await ws.send(json.dumps({"type": "user_message", "content": content}))
        events = await read_until(ws, until)
        await ws.close()
        return events

    return asyncio.run(go())


def test_a_default_profile_changed_on_one_process_is_used_by_the_next_turn_on_the_other(
        cluster, upstream):
    a, b = cluster
    chat_id = new_chat(a)
    upstream.enqueue(Text("first answer"), Text("second answer"))
    turn(a, chat_id)  # a now holds the profile in its cache
    assert upstream.requests[-1]["model"] == "fake-model"
    with b.client() as http:
        assert http.post("/api/profiles", json={"name": "other", "profile": {
            "provider": "openai", "model": "other-model", "base_url": upstream.url}}
        ).status_code == 201
        assert http.put("/api/profiles/default", json={"name": "other"}).status_code == 200
    turn(a, chat_id)  # the chat follows the default profile
    assert upstream.requests[-1]["model"] == "other-model"


def test_a_policy_changed_on_one_process_applies_to_the_next_turn_on_the_other(
        cluster, upstream):
    a, b = cluster
    set_mode(a, "autonomous")
    chat_id = new_chat(a)
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "echo ran"})]), Text("done"))
    events = turn(a, chat_id)  # autonomous: the call ran without a question
    assert any(e["type"] == "agent.tool_result" for e in events)
    set_mode(b, "interactive")
    upstream.enqueue(ToolCalls([("c2", "bash", {"command": "echo asked"})]), Text("ok"))
    events = turn(a, chat_id, until="agent.tool_request")
    assert events[-1]["data"]["tool_calls"][0]["id"] == "c2"

