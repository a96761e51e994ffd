"""Oversized input is refused with a clear error, through a real ``serve`` process.

HTTP: a body over ``GATEWAY_MAX_BODY_BYTES`` (1 MiB by default) gets 413
``request_too_large`` on any endpoint, also when sent chunked (no Content-Length), and a
20 MB one leaves the server serving. WebSocket: a frame over ``GATEWAY_MAX_FRAME_BYTES``
gets ``agent.error`` ``invalid_event`` and the socket stays open; one beyond daphne's own
limit (4 times ours, set by ``serve``) closes that connection only.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterator

import httpx
import pytest
import websockets

from tests.e2e.server import ServeProcess

MiB = 1024 * 1024
ISOLATED = {"DATABASE_URL": "", "REDIS_URL": "", "OPENAI_API_KEY": ""}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path_factory.mktemp("limits") / "data", env=ISOLATED)
    try:
        yield proc.start()  # default limits: 1 MiB bodies and frames
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def chat_id(server: ServeProcess) -> str:
    with server.client() as http:
        return http.post("/api/chats", json={"title": "limits"}).json()["chat_id"]


def _json_of_size(size: int) -> bytes:
    head, tail = b'{"title": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "request_too_large", "message":
                               f"The body is larger than the limit of {MiB} bytes."}


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/chats"), ("PATCH", "/api/chats/{chat}"), ("PUT", "/api/permissions"),
    ("POST", "/api/profiles"), ("PUT", "/api/profiles/default"),
    ("PUT", "/api/config/sandbox"), ("POST", "/api/tokens"),
    ("POST", "/api/chats/{chat}/cancel"),  # reads no body: refused all the same
    ("POST", "/api/nope"),
])
def test_a_body_over_the_limit_is_a_json_413(server: ServeProcess, chat_id: str, method: str,
                                            path: str) -> None:
    with server.client() as http:
        response = http.request(method, path.format(chat=chat_id),
                                content=_json_of_size(MiB + 1),
                                headers={"Content-Type": "application/json"})

    _assert_too_large(response)


def test_a_body_at_the_limit_is_read(server: ServeProcess) -> None:
    with server.client() as http:
        response = http.post("/api/chats", content=_json_of_size(MiB),
                             headers={"Content-Type": "application/json"})

    assert response.status_code == 400  # parsed, then refused by the title's max_length
    assert response.json()["error"] == "invalid_request"
    assert "title" in response.json()["fields"]


def _chunked(body: bytes, piece: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(body), piece):
        yield body[start:start + piece]


def test_a_chunked_body_is_read_and_not_silently_dropped(server: ServeProcess) -> None:
    body = json.dumps({"title": "sent in chunks"}).encode()
    with server.client() as http:
        response = http.post("/api/chats", content=_chunked(body, 5),
                             headers={"Content-Type": "application/json"})

    assert response.status_code == 201, response.text
    assert response.json()["title"] == "sent in chunks"


def test_a_chunked_body_over_the_limit_is_a_json_413(server: ServeProcess) -> None:
    with server.client() as http:
        response = http.post("/api/chats", content=_chunked(_json_of_size(2 * MiB)),
                             headers={"Content-Type": "application/json"})

    _assert_too_large(response)


def test_a_20_mb_body_is_refused_and_the_server_keeps_serving(server: ServeProcess) -> None:
    with server.client() as http:
        response = http.post("/api/chats", content=_json_of_size(20 * MiB),
                             headers={"Content-Type": "application/json"}, timeout=60)
        _assert_too_large(response)
        assert http.get("/health").json()["status"] == "ok"
        assert http.post("/api/chats", json={"title": "after"}).status_code == 201


# ------------------------------------------------------------------------ socket frames


def _url(server: ServeProcess, chat_id: str) -> str:
    return f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}"


async def _next_event(ws: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


@pytest.mark.parametrize("size", [MiB + 1, 3 * MiB])
def test_a_frame_over_the_limit_gets_invalid_event_and_the_socket_stays_open(
        server: ServeProcess, chat_id: str, size: int) -> None:
    frame = json.dumps({"type": "user_message", "content": "x" * size})

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with websockets.connect(_url(server, chat_id), max_size=None) as ws:
            assert (await _next_event(ws))["type"] == "agent.state"
            await ws.send(frame)
            refused = await _next_event(ws)
            await ws.send(json.dumps({"type": "tool_approval", "verdicts": {"c1": "allow"}}))
            return refused, await _next_event(ws)

    refused, after = asyncio.run(scenario())

    assert refused["type"] == "agent.error"
    assert refused["data"] == {"code": "invalid_event",
                               "message": f"frame too large: the limit is {MiB} bytes"}
    assert after["data"]["code"] == "invalid_event"  # still answering on the same socket
    assert "no tool call is waiting" in after["data"]["message"]


def test_a_frame_beyond_daphnes_limit_closes_only_that_socket(server: ServeProcess,
                                                              chat_id: str) -> None:
    async def scenario() -> tuple[int | None, dict[str, Any]]:
        async with websockets.connect(_url(server, chat_id)) as bystander:
            await _next_event(bystander)
            async with websockets.connect(_url(server, chat_id), max_size=None) as ws:
                await _next_event(ws)
                try:
                    await ws.send("x" * (20 * MiB))
                    await asyncio.wait_for(ws.recv(), 10)
                except websockets.ConnectionClosed:
                    pass
                code = ws.close_code
            await bystander.send("not json")
            return code, await _next_event(bystander)

    code, answer = asyncio.run(scenario())

    assert code in (1009, 1006)  # message too big; 1006 when it is cut while still sending
    assert answer["data"]["code"] == "invalid_event"  # the other socket is unaffected
    with server.client() as http:
        assert http.get("/health").json()["status"] == "ok"


# ------------------------------------------------------------------------- in process


@pytest.mark.django_db
def test_an_endpoint_that_reads_no_body_refuses_an_oversized_one_too(alice: Any,
                                                                     settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024

    response = alice.client.post("/api/panic", "x" * 2000, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"
