"""Sessions against a real ``serve`` process: revocation reaches open sockets, pending
approvals cannot be given by a revoked socket, and password sign-in is limited on both
login pages while a valid token from the same address keeps working (issue 16)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from typing import Any, Iterator

import httpx
import pytest
import websockets

from tests.e2e.server import ROOT, ServeProcess
from tests.fake_upstream import FakeUpstream, Text, ToolCalls

pytestmark = pytest.mark.timeout(120)

PASSWORD = "frank-has-a-long-password"
CREATE_FRANK = f"""
from django.contrib.auth import get_user_model
get_user_model().objects.create_user("frank", password={PASSWORD!r}, is_staff=True)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           upstream_server: FakeUpstream) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path_factory.mktemp("sessions") / "data", env={
        "DATABASE_URL": "", "REDIS_URL": "", "OPENAI_API_KEY": "",
        "GATEWAY_AUTH_FAIL_LIMIT": "3"})
    try:
        proc.start()
        subprocess.run([sys.executable, "manage.py", "shell", "-c", CREATE_FRANK], cwd=ROOT,
                       env=proc.env, check=True, capture_output=True, timeout=90)
        with proc.client() as http:
            assert http.post("/api/profiles", json={"name": "fake", "profile": {
                "provider": "openai", "model": "fake-model",
                "base_url": upstream_server.url, "api_key": "sk-sessions"}}).status_code == 201
            assert http.put("/api/permissions", json={"mode": "interactive"}).status_code == 200
        yield proc
    finally:
        proc.stop()


def new_token(server: ServeProcess) -> tuple[str, str]:
    with server.client() as http:
        body = http.post("/api/tokens", json={"name": "to revoke"}).json()
    return body["id"], body["token"]


def revoke(server: ServeProcess, token_id: str) -> None:
    with server.client() as http:
        assert http.delete(f"/api/tokens/{token_id}").status_code == 204


def new_chat(server: ServeProcess) -> str:
    with server.client() as http:
        return http.post("/api/chats", json={}).json()["chat_id"]


async def close_code(ws: Any, timeout: float = 5) -> int:
    """Read (and drop) events until the server closes the socket; its code."""
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


def test_revoke_then_send_on_the_old_socket_closes_it_with_4001_and_stores_nothing(
        server: ServeProcess) -> None:
    token_id, token = new_token(server)
    chat_id = new_chat(server)

    async def scenario() -> int:
        async with websockets.connect(f"{server.ws_url}/ws/{chat_id}?token={token}") as ws:
            await ws.recv()  # agent.state
            revoke(server, token_id)
            try:
                await ws.send(json.dumps({"type": "user_message", "content": "still me?"}))
            except websockets.ConnectionClosed:
                pass  # closed by the revocation already
            return await close_code(ws)

    assert asyncio.run(scenario()) == 4001
    with server.client() as http:
        detail = http.get(f"/api/chats/{chat_id}").json()
        assert detail["messages"] == [] and detail["queued"] == []
        assert http.get("/api/chats", headers={"Authorization": f"Bearer {token}"}
                        ).status_code == 401


def test_a_pending_approval_is_refused_from_a_revoked_socket(
        server: ServeProcess, upstream_server: FakeUpstream) -> None:
    upstream_server.enqueue(ToolCalls([("call-r", "bash", {"command": "echo ran > proof"})]),
                            Text("done"))
    token_id, token = new_token(server)
    chat_id = new_chat(server)

    async def scenario() -> tuple[int, list[str]]:
        async with websockets.connect(f"{server.ws_url}/ws/{chat_id}?token={token}") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "user_message", "content": "run it"}))
            await until(ws, "agent.tool_request")
            revoke(server, token_id)
            try:
                await ws.send(json.dumps({"type": "tool_approval",
                                          "verdicts": {"call-r": "allow"}}))
            except websockets.ConnectionClosed:
                pass
            code = await close_code(ws)
        url = f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}"
        async with websockets.connect(url) as watcher:
            state = json.loads(await watcher.recv())
            await watcher.send(json.dumps({"type": "cancel"}))
            await until(watcher, "agent.cancelled")
        return code, [c["id"] for c in state["data"]["pending_tool_calls"]]

    code, pending = asyncio.run(scenario())

    assert code == 4001
    assert pending == ["call-r"]  # still waiting: the revoked socket's "allow" counted for nothing
    assert not list(server.data_dir.rglob("proof"))


# ---------------------------------------------------------------- password sign-in


def sign_in(client: httpx.Client, page: str, password: str) -> httpx.Response:
    form = client.get(page)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    return client.post(page, data={"username": "frank", "password": password,
                                   "csrfmiddlewaretoken": csrf},
                       headers={"Referer": server_url(client) + page})


def server_url(client: httpx.Client) -> str:
    return str(client.base_url).rstrip("/")


def test_sign_in_is_locked_on_both_pages_and_tokens_keep_working(
        server: ServeProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=20) as browser:
        first = sign_in(browser, "/login/", "wrong-1")
        second = sign_in(browser, "/admin/login/", "wrong-2")
        third = sign_in(browser, "/login/", "wrong-3")  # the limit: 3
        right_dashboard = sign_in(browser, "/login/", PASSWORD)
        right_admin = sign_in(browser, "/admin/login/", PASSWORD)

    assert (first.status_code, second.status_code) == (200, 200)  # the form, with an error
    assert third.status_code == 429
    for refused in (right_dashboard, right_admin):
        assert refused.status_code == 429
        assert "Too many failed sign-ins" in refused.text
        assert int(refused.headers["Retry-After"]) >= 1
    with server.client() as http:  # the same address, with a valid token
        assert http.get("/api/chats").status_code == 200
