"""End to end over HTTP: ``manage.py serve`` as a real process, driven with httpx.

The server gets its own data directory (SQLite, secret key) and no DATABASE_URL, REDIS_URL
or OPENAI_API_KEY from the caller's environment. It runs without PYTHONUNBUFFERED, as
under a process manager, so the token line must be flushed by ``serve`` itself.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.e2e.server import ServeProcess

ISOLATED = {"DATABASE_URL": "", "REDIS_URL": "", "OPENAI_API_KEY": "",
            "PYTHONUNBUFFERED": ""}
FIRST_START = re.compile(
    r"^Admin user 'admin'; its API token \(shown once, keep it\):\n(gw_[0-9a-f]{64})\n"
    r"A new one later: python3 manage\.py issue_token admin --admin$", re.M)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    # A real first start: these tests are about what serve makes in an empty data dir.
    proc = ServeProcess(tmp_path_factory.mktemp("serve") / "data", env=ISOLATED,
                        from_template=False)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()  # SIGTERM, then SIGKILL after 10 s


@pytest.fixture
def http(server: ServeProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def test_the_first_start_prints_the_admin_token_and_the_address(server: ServeProcess) -> None:
    log = server.log()

    found = FIRST_START.search(log)
    assert found, log
    assert found.group(1) == server.admin_token
    assert f"on http://127.0.0.1:{server.port} (data: {server.data_dir})" in log


def test_health_answers_without_a_token(server: ServeProcess) -> None:
    response = httpx.get(f"{server.url}/health", timeout=10)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["active_turns"] == 0
    assert isinstance(body["version"], str) and body["version"]


def test_the_data_dir_holds_the_database_and_a_private_secret(server: ServeProcess) -> None:
    assert (server.data_dir / "gateway.sqlite3").exists()
    secret = server.data_dir / "secret_key"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    database = b"".join(path.read_bytes() for path in server.data_dir.glob("gateway.sqlite3*"))
    assert server.admin_token[:15].encode() in database  # the token's row is there ...
    assert server.admin_token.encode() not in database  # ... hashed


def test_the_api_refuses_a_request_without_a_token(server: ServeProcess) -> None:
    response = httpx.get(f"{server.url}/api/chats", timeout=10)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"


def test_the_api_refuses_a_wrong_token(server: ServeProcess) -> None:
    with server.client("gw_" + "0" * 64) as client:
        response = client.get("/api/chats")

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


def test_an_unknown_url_is_a_json_404(http: httpx.Client) -> None:
    response = http.get("/api/nope")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "not_found", "message": "No such endpoint: GET /api/nope"}


def test_the_admin_creates_a_profile_whose_key_stays_hidden(http: httpx.Client) -> None:
    created = http.post("/api/profiles", json={"name": "e2e", "profile": {
        "provider": "openai", "model": "fake-model", "base_url": "http://127.0.0.1:9/v1",
        "api_key": "sk-e2e-secret-4321"}})

    assert created.status_code == 201
    assert created.json()["profile"]["api_key"] == "...4321"
    listing = http.get("/api/profiles")
    assert listing.json()["default"] == "e2e"
    assert listing.json()["profiles"]["e2e"]["model"] == "fake-model"
    assert "sk-e2e-secret" not in listing.text


def test_a_chat_from_creation_to_deletion(http: httpx.Client) -> None:
    created = http.post("/api/chats", json={"title": "over http"})
    assert created.status_code == 201
    chat = created.json()
    assert set(chat) == {"chat_id", "title", "profile", "created_at", "updated_at"}

    listed = http.get("/api/chats", params={"limit": 100}).json()
    assert chat in listed["chats"]

    detail = http.get(f"/api/chats/{chat['chat_id']}")
    assert detail.status_code == 200
    assert detail.json()["title"] == "over http"
    assert detail.json()["messages"] == []

    context = http.get(f"/api/chats/{chat['chat_id']}/context").json()
    assert context["compaction_threshold"] == 0.75
    assert type(context["context_window"]) is int

    deleted = http.delete(f"/api/chats/{chat['chat_id']}")
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": True}
    gone = http.get(f"/api/chats/{chat['chat_id']}")
    assert gone.status_code == 404
    assert gone.json() == {"error": "not_found", "message": "No such chat."}
    assert chat["chat_id"] not in http.get("/api/chats", params={"limit": 100}).text


def test_a_malformed_body_is_a_json_400(http: httpx.Client) -> None:
    response = http.post("/api/chats", content=b'{"title": ',
                         headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"


def test_a_restart_keeps_the_data_and_the_token_and_prints_no_new_token(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = ServeProcess(data_dir, env=ISOLATED)
    try:
        first.start()
        with first.client() as client:
            chat_id = client.post("/api/chats", json={"title": "kept"}).json()["chat_id"]
    finally:
        first.stop()
    token = first.admin_token
    assert token

    second = ServeProcess(data_dir, env=ISOLATED)
    earlier = len(second.log())  # the log is per port: the same port appends to it
    try:
        second.start()
        new_output = second.log()[earlier:]
        assert "Admin user 'admin' exists." in new_output
        assert not FIRST_START.search(new_output)
        with second.client(token) as client:
            response = client.get(f"/api/chats/{chat_id}")
        assert response.status_code == 200
        assert response.json()["title"] == "kept"
    finally:
        second.stop()
