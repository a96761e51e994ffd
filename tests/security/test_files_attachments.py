"""Attachments through a real ``serve`` (with the sandbox on where bubblewrap exists): a
file uploaded by the files API and attached to a message reaches the model as its path,
the ``read`` tool reads it, an attached PNG reaches a vision profile as an image part, a
path outside the workspace is refused, and the history keeps the attachment."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
import websockets

from tests.fake_upstream import Text, ToolCalls
from tests.security.conftest import Gateway, tool_results

# A 1x1 PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
                       "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def attacher(gateway: Gateway) -> str:
    gateway.make_users(["attacher"])
    with gateway.server.client() as http:
        made = http.post("/api/profiles", json={"name": "fakevision", "profile": {
            "provider": "openai", "model": "fake-vision", "vision": True,
            "base_url": gateway.upstream.url, "api_key": "sk-vision"}})
        assert made.status_code == 201, made.text
    return gateway.tokens["attacher"]


def upload(gateway: Gateway, token: str, path: str, data: bytes) -> None:
    with gateway.server.client(token) as http:
        response = http.put("/api/files/content", params={"path": path}, content=data)
    assert response.status_code == 201, response.text


def new_chat(gateway: Gateway, token: str, profile: str | None = None) -> str:
    with gateway.server.client(token) as http:
        response = http.post("/api/chats", json={"title": "files", "profile": profile})
    assert response.status_code == 201, response.text
    return response.json()["chat_id"]


async def send(gateway: Gateway, token: str, chat_id: str, text: str,
               attachments: list[str]) -> list[dict[str, Any]]:
    """One message with attachments; the events up to turn_complete or an error."""
    url = f"{gateway.server.ws_url}/ws/{chat_id}?token={token}"
    async with websockets.connect(url, max_size=None) as ws:
        await asyncio.wait_for(ws.recv(), 10)  # agent.state
        await ws.send(json.dumps({"type": "user_message", "content": text,
                                  "attachments": attachments}))
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 25
        while not events or events[-1]["type"] not in ("agent.turn_complete", "agent.error"):
            raw = await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic()))
            events.append(json.loads(raw))
        return events


def test_an_attached_text_file_reaches_the_model_as_a_path_the_read_tool_reads(
        gateway: Gateway, attacher: str) -> None:
    chat_id = new_chat(gateway, attacher)
    path = f"uploads/{chat_id}/notes.txt"
    upload(gateway, attacher, path, b"the attached notes\n")
    seen: list[dict] = []

    def script(body: dict) -> Any:
        seen.append(body)
        if len(seen) == 1:
            return ToolCalls([("r1", "read", {"path": path})])
        return Text("read it")
    gateway.scripts["attachtext"] = script

    events = asyncio.run(send(gateway, attacher, chat_id, "attachtext: summarise", [path]))

    first_user = [m for m in seen[0]["messages"] if m["role"] == "user"][-1]
    assert any(path in block.get("text", "") for block in first_user["content"])
    assert "the attached notes" in json.dumps(tool_results(events))
    with gateway.server.client(attacher) as http:
        history = http.get(f"/api/chats/{chat_id}").json()
    assert path in json.dumps(history)  # a reload shows the attachment


def test_an_attached_png_reaches_a_vision_profile_as_an_image_part(
        gateway: Gateway, attacher: str) -> None:
    chat_id = new_chat(gateway, attacher, profile="fakevision")
    path = f"uploads/{chat_id}/dot.png"
    upload(gateway, attacher, path, PNG)
    seen: list[dict] = []
    gateway.scripts["attachpng"] = lambda body: seen.append(body) or Text("a dot")

    asyncio.run(send(gateway, attacher, chat_id, "attachpng: what is this?", [path]))

    blocks = [m for m in seen[0]["messages"] if m["role"] == "user"][-1]["content"]
    images = [b for b in blocks if b["type"] == "image_url"]
    assert seen[0]["model"] == "fake-vision"
    assert [i["image_url"]["url"] for i in images] == [
        "data:image/png;base64," + base64.b64encode(PNG).decode()]


def test_a_png_for_a_profile_without_vision_is_only_a_path(
        gateway: Gateway, attacher: str) -> None:
    chat_id = new_chat(gateway, attacher, profile="fake")
    path = f"uploads/{chat_id}/dot.png"
    upload(gateway, attacher, path, PNG)
    seen: list[dict] = []
    gateway.scripts["attachplain"] = lambda body: seen.append(body) or Text("ok")

    asyncio.run(send(gateway, attacher, chat_id, "attachplain: look", [path]))

    blocks = [m for m in seen[0]["messages"] if m["role"] == "user"][-1]["content"]
    assert [b["type"] for b in blocks] == ["text", "text"]
    assert path in blocks[1]["text"]


@pytest.mark.parametrize("path", ["../victimfiles/secret.txt", "/etc/passwd"])
def test_an_attachment_outside_the_workspace_is_refused(
        gateway: Gateway, attacher: str, path: str) -> None:
    chat_id = new_chat(gateway, attacher)

    events = asyncio.run(send(gateway, attacher, chat_id, "x: y", [path]))

    assert events[-1]["type"] == "agent.error"
    assert events[-1]["data"]["code"] == "invalid_attachment"
