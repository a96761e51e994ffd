"""A burst of wrong tokens from one client address is refused with 429 ``rate_limited``.

``GATEWAY_AUTH_FAIL_LIMIT`` wrong tokens per ``GATEWAY_AUTH_FAIL_WINDOW`` seconds; after
that, a wrong token from the address gets 429 with ``Retry-After`` instead of 401, a
socket with one closes with 4029, and other addresses are not affected. A valid token is
never refused (behind a proxy every client may share one address). Wrong socket tokens
count like wrong HTTP tokens.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from types import SimpleNamespace
from typing import Any, Iterator

import httpx
import pytest
import websockets
from channels.testing import WebsocketCommunicator

from gateway import ratelimit
from gateway_project.asgi import application
from tests.chats.wsutil import fresh_runtime, new_chat  # noqa: F401
from tests.e2e.server import ServeProcess

WRONG = "gw_" + "0" * 64
ISOLATED = {"DATABASE_URL": "", "REDIS_URL": "", "OPENAI_API_KEY": ""}


@pytest.fixture
def limit(settings: Any) -> int:
    settings.GATEWAY_AUTH_FAIL_LIMIT = 3
    settings.GATEWAY_AUTH_FAIL_WINDOW = 60
    return 3


def _get(actor_or_client: Any, token: str | None, address: str = "10.0.0.1") -> Any:
    client = getattr(actor_or_client, "client", actor_or_client)
    headers = {"REMOTE_ADDR": address}
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    client.credentials()  # only the headers given here
    return client.get("/api/chats", **headers)


@pytest.mark.django_db
def test_wrong_tokens_past_the_limit_get_429_with_retry_after(anon: Any, limit: int) -> None:
    for _ in range(limit):
        assert _get(anon, WRONG).status_code == 401

    refused = _get(anon, WRONG)

    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/json"
    assert refused.json()["error"] == "rate_limited"
    assert "failed authentications" in refused.json()["message"]
    assert 1 <= int(refused["Retry-After"]) <= 62


@pytest.mark.django_db
def test_a_valid_token_from_an_address_past_the_limit_still_works(anon: Any, alice: Any,
                                                                  limit: int) -> None:
    for _ in range(limit + 5):
        _get(anon, WRONG)

    assert _get(anon, alice.token).status_code == 200
    assert _get(anon, WRONG).status_code == 429


@pytest.mark.django_db
def test_other_addresses_keep_working(anon: Any, alice: Any, limit: int) -> None:
    for _ in range(limit + 5):
        _get(anon, WRONG, address="10.0.0.1")

    assert _get(anon, alice.token, address="10.0.0.2").status_code == 200
    assert _get(anon, WRONG, address="10.0.0.3").status_code == 401


@pytest.mark.django_db
def test_requests_without_a_token_are_not_counted(anon: Any, alice: Any, limit: int) -> None:
    for _ in range(limit * 3):
        assert _get(anon, None).status_code == 401

    assert _get(anon, alice.token).status_code == 200


@pytest.mark.django_db
def test_a_health_check_is_never_limited(anon: Any, limit: int) -> None:
    for _ in range(limit + 1):
        _get(anon, WRONG)

    assert anon.get("/health", REMOTE_ADDR="10.0.0.1").status_code == 200


@pytest.mark.django_db
def test_the_block_ends_with_the_window(anon: Any, alice: Any, limit: int,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_040.0]  # 20 s into a 60 s window
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: now[0]))
    for _ in range(limit):
        _get(anon, WRONG)
    refused = _get(anon, WRONG)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) in (40, 41)  # the window's rest (+1 s of rounding)

    now[0] += 40.5

    assert _get(anon, WRONG).status_code == 401


@pytest.mark.django_db
def test_zero_turns_the_limit_off(anon: Any, alice: Any, settings: Any) -> None:
    settings.GATEWAY_AUTH_FAIL_LIMIT = 0
    for _ in range(30):
        assert _get(anon, WRONG).status_code == 401

    assert _get(anon, alice.token).status_code == 200


@pytest.mark.django_db
def test_a_broken_cache_locks_nobody_out(anon: Any, alice: Any, limit: int,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache down")

    for name in ("get", "add", "incr"):
        monkeypatch.setattr(ratelimit.cache, name, broken)

    for _ in range(limit + 2):
        assert _get(anon, WRONG).status_code == 401
    assert _get(anon, alice.token).status_code == 200


async def _socket_close_code(chat_id: Any, token: str, address: str) -> int:
    comm = WebsocketCommunicator(application, f"/ws/{chat_id}?token={token}")
    comm.scope["client"] = [address, 50000]  # what daphne puts there
    connected, _ = await comm.connect(timeout=5)
    assert connected  # accepted, then closed with a code
    output = await comm.receive_output(timeout=5)
    await comm.disconnect()
    return 0 if output["type"] == "websocket.send" else output["code"]  # 0: got agent.state


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_wrong_socket_tokens_count_and_a_blocked_address_gets_4029(
        alice: Any, limit: int) -> None:
    chat = await new_chat(alice.user)
    for _ in range(limit):
        assert await _socket_close_code(chat.id, WRONG, "10.0.0.7") == 4001

    assert await _socket_close_code(chat.id, WRONG, "10.0.0.7") == 4029
    assert await _socket_close_code(chat.id, alice.token, "10.0.0.7") == 0
    assert await _socket_close_code(chat.id, alice.token, "10.0.0.8") == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_socket_and_http_failures_share_one_count(alice: Any, anon: Any,
                                                       limit: int) -> None:
    chat = await new_chat(alice.user)
    assert await _socket_close_code(chat.id, WRONG, "10.0.0.1") == 4001
    for _ in range(limit - 1):
        assert (await asyncio.to_thread(_get, anon, WRONG)).status_code == 401

    assert await _socket_close_code(chat.id, WRONG, "10.0.0.1") == 4029
    assert (await asyncio.to_thread(_get, anon, WRONG)).status_code == 429
    assert await _socket_close_code(chat.id, alice.token, "10.0.0.1") == 0
    assert (await asyncio.to_thread(_get, anon, alice.token)).status_code == 200


# ---------------------------------------------------------------- a real server

# The counts are kept per fixed window (``gateway.ratelimit``): a burst that straddled the
# end of one started from zero in the next (20 wrong tokens let through where the limit
# is 10). The real servers count in hour-long windows, and a burst never starts in the
# last seconds of one.
WINDOW = 3600
REAL = {**ISOLATED, "GATEWAY_AUTH_FAIL_LIMIT": "10", "GATEWAY_AUTH_FAIL_WINDOW": str(WINDOW)}


def clear_of_the_window_end(margin: float = 30) -> None:
    left = WINDOW - time.time() % WINDOW
    if left < margin:
        time.sleep(left + 0.5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """Behind a (simulated) proxy: X-Forwarded-For names the client."""
    proc = ServeProcess(tmp_path_factory.mktemp("ratelimit") / "data",
                        env={**REAL, "GATEWAY_TRUST_PROXY_HEADERS": "true"})
    try:
        yield proc.start()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def direct_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """Reached directly (the default): X-Forwarded-For is not trusted."""
    proc = ServeProcess(tmp_path_factory.mktemp("ratelimit-direct") / "data",
                        env=REAL)
    try:
        yield proc.start()
    finally:
        proc.stop()


def test_a_real_server_limits_a_parallel_burst_and_serves_other_addresses(
        server: ServeProcess) -> None:
    def attempt(_: int) -> httpx.Response:
        with server.client(WRONG) as client:
            return client.get("/api/chats", headers={"X-Forwarded-For": "192.0.2.10"})

    clear_of_the_window_end()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = [r.status_code for r in pool.map(attempt, range(60))]

    # Checks racing with counts can let a few more through, never many.
    assert set(statuses) == {401, 429}
    assert 10 <= statuses.count(401) <= 10 + 8
    with server.client(WRONG) as client:
        refused = client.get("/api/chats", headers={"X-Forwarded-For": "192.0.2.10"})
    assert refused.status_code == 429
    assert refused.json()["error"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    with server.client() as client:  # the admin, from another address
        assert client.get("/api/chats", headers={"X-Forwarded-For": "192.0.2.11"}
                          ).status_code == 200
        assert client.get("/health").status_code == 200


def test_a_real_server_closes_wrong_sockets_of_a_blocked_address_with_4029(
        server: ServeProcess) -> None:
    with server.client() as client:
        chat_id = client.post("/api/chats", headers={"X-Forwarded-For": "192.0.2.20"}
                              ).json()["chat_id"]

    async def close_code(token: str) -> int:
        url = f"{server.ws_url}/ws/{chat_id}?token={token}"
        async with websockets.connect(url, additional_headers={
                "X-Forwarded-For": "192.0.2.21"}) as ws:
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else 1006
        return 0

    async def scenario() -> list[int]:
        codes = [await close_code(WRONG) for _ in range(11)]
        return codes + [await close_code(server.admin_token)]

    clear_of_the_window_end()
    codes = asyncio.run(scenario())
    assert codes == [4001] * 10 + [4029] + [0]  # the valid token still gets in


def test_a_spoofed_forwarded_address_does_not_escape_the_limit(
        direct_server: ServeProcess) -> None:
    statuses = []
    clear_of_the_window_end()
    for n in range(30):
        with direct_server.client(WRONG) as client:
            statuses.append(client.get("/api/chats", headers={
                "X-Forwarded-For": f"198.51.100.{n}"}).status_code)

    assert 429 in statuses
