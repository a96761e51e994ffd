"""Hostile and careless input against a real ``serve`` process (issue 16): bad text over
the socket, bodies and cursors that used to answer 500, a frame far over the limit, query
strings in logs, and the API docs on a server without internet."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
import websockets

from tests.conftest import need
from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream, Text

pytestmark = pytest.mark.timeout(120)

MiB = 1024 * 1024
SECRET = "gw_thisisnotarealtokenbutitmustnotbelogged"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           upstream_server: FakeUpstream) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path_factory.mktemp("input") / "data", env={
        "DATABASE_URL": "", "REDIS_URL": "", "OPENAI_API_KEY": "",
        "GATEWAY_AUTH_FAIL_LIMIT": "0"})
    try:
        proc.start()
        with proc.client() as http:
            assert http.post("/api/profiles", json={"name": "fake", "profile": {
                "provider": "openai", "model": "fake-model",
                "base_url": upstream_server.url, "api_key": "sk-input"}}).status_code == 201
        yield proc
    finally:
        proc.stop()


def new_chat(server: ServeProcess) -> str:
    with server.client() as http:
        return http.post("/api/chats", json={}).json()["chat_id"]


async def next_event(ws: Any, timeout: float = 15) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


def test_surrogates_and_nul_over_the_socket_are_refused_and_the_chat_goes_on(
        server: ServeProcess, upstream_server: FakeUpstream) -> None:
    chat_id = new_chat(server)
    upstream_server.enqueue(Text("all good"))
    frames = ['{"type": "user_message", "content": "say a\\ud800b"}',
              '{"type": "user_message", "content": "say a\\u0000b"}',
              '{"type": "run", "data": {"message": "x\\udfff"}}']

    async def scenario() -> tuple[list[dict[str, Any]], str]:
        url = f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}"
        async with websockets.connect(url) as ws:
            await next_event(ws)
            errors = []
            for frame in frames:
                await ws.send(frame)
                errors.append(await next_event(ws))
            await ws.send(json.dumps({"type": "user_message", "content": "hello"}))
            text = ""
            while (event := await next_event(ws))["type"] != "agent.turn_complete":
                if event["type"] == "agent.text_delta":
                    text += event["data"]["text"]
            return errors, text

    errors, text = asyncio.run(scenario())

    assert [(e["type"], e["data"]["code"]) for e in errors] == \
        [("agent.error", "invalid_event")] * 3
    assert text == "all good"
    with server.client() as http:
        detail = http.get(f"/api/chats/{chat_id}")
    assert detail.status_code == 200
    assert [m["content"] for m in detail.json()["messages"]] == ["hello", "all good"]


def test_a_deeply_nested_body_and_a_bad_cursor_answer_400(server: ServeProcess) -> None:
    nested = '{"title": ' + "[" * 50_000 + "]" * 50_000 + "}"
    cursor = base64.urlsafe_b64encode(
        f"9999-12-31T23:59:59-23:59|{uuid.uuid4()}".encode()).decode().rstrip("=")

    with server.client() as http:
        body = http.post("/api/chats", content=nested,
                         headers={"Content-Type": "application/json"})
        page = http.get("/api/chats", params={"cursor": cursor})

    assert (body.status_code, body.json()["error"]) == (400, "invalid_request")
    assert (page.status_code, page.json()["error"]) == (400, "invalid_cursor")


def test_a_5_mb_frame_closes_the_socket_with_1009(server: ServeProcess) -> None:
    chat_id = new_chat(server)

    async def scenario() -> int | None:
        url = f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}"
        async with websockets.connect(url, max_size=None) as ws:
            await next_event(ws)
            try:
                await ws.send("x" * (5 * MiB))  # over 4 x GATEWAY_MAX_FRAME_BYTES (1 MiB)
                await asyncio.wait_for(ws.recv(), 15)
            except websockets.ConnectionClosed:
                pass
            return ws.close_code

    assert asyncio.run(scenario()) == 1009


def test_json_paths_answer_json_errors(server: ServeProcess) -> None:
    with server.client() as http:
        answers = [http.get("/api/nothing"), http.get("/ws/nothing"),
                   http.get("/dashboard/nothing"), http.get("/dashboard/token"),
                   http.delete("/api/chats"),
                   http.post("/dashboard/token")]  # no session, no CSRF cookie

    assert [a.status_code for a in answers] == [404, 404, 404, 405, 405, 403]
    for answer in answers:
        assert answer.headers["Content-Type"] == "application/json"
        assert set(answer.json()) >= {"error", "message"}


def test_no_query_string_reaches_the_log(server: ServeProcess) -> None:
    async def attempts() -> None:
        for path in ("/ws/not-a-chat", "/ws/a/b/c", f"/ws/{uuid.uuid4()}"):
            try:
                async with websockets.connect(
                        f"{server.ws_url}{path}?token={SECRET}&x=1") as ws:
                    await asyncio.wait_for(ws.recv(), 5)
            except (websockets.InvalidStatus, websockets.ConnectionClosed,
                    TimeoutError):
                pass

    asyncio.run(attempts())
    with server.client() as http:
        http.get(f"/api/chats?token={SECRET}")
        http.get(f"/api/nothing?token={SECRET}")
        http.get(f"/nothing?token={SECRET}")

    assert SECRET not in server.log()


def test_the_api_docs_render_without_internet(server: ServeProcess) -> None:
    need(CHROMIUM.exists(), "chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    outside: list[str] = []

    def only_loopback(route: Any) -> None:
        host = urlsplit(route.request.url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.goto(f"{server.url}/api/docs/")
            page.wait_for_selector(".opblock", timeout=20_000)  # operations listed
            title = page.locator(".info .title").inner_text()
            operations = page.locator(".opblock").count()
        finally:
            browser.close()

    assert outside == []
    assert "Agent gateway API" in title
    assert operations > 20
