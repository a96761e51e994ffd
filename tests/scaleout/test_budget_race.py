"""Budgets hold across server processes: turns started at the same moment on two
``serve`` processes sharing PostgreSQL never take a budget past its limit by more than
one turn (the admission locks the budget row and counts the turns still running)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Iterator

import pytest
import websockets

from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream, Text

LIMIT = 100
TURN_TOKENS = 30  # every reply below: 20 in, 10 out
CHATS = 6


@pytest.fixture
def budget_cluster(tmp_path: Path, pg_url: str, redis_url: str, upstream: FakeUpstream
                   ) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """Two processes on one database, with a turn lease long enough that a loaded machine
    never has one process take over the other's live turns (that is not under test)."""
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "SECRET_KEY": "x" * 50,
           "GATEWAY_TURN_LEASE_SECONDS": "60", "GATEWAY_UPSTREAM_RETRIES": "0",
           "GATEWAY_WORKSPACE": str(tmp_path / "shared-workspaces")}
    first = ServeProcess(tmp_path / "a", env).start(timeout=300)
    second = ServeProcess(tmp_path / "b", env).start(timeout=300)
    second.admin_token = first.admin_token
    try:
        with first.client() as http:
            assert http.post("/api/profiles", json={"name": "fake", "profile": {
                "provider": "openai", "model": "fake-model",
                "base_url": upstream.url}}).status_code == 201
        yield first, second
    finally:
        first.stop()
        second.stop()


async def one_turn(server, chat_id: str) -> str:
    """Run a message to the end of its turn; the error code, or "" when it ran."""
    url = f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}"
    async with websockets.connect(url) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] == "agent.state"
        await ws.send(json.dumps({"type": "user_message", "content": "spend"}))
        code = ""
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 90))
            if event["type"] == "agent.error":
                code = event["data"]["code"]
            if event["type"] == "agent.turn_complete":
                return code


async def wave(servers, chats: list[str]) -> list[str]:
    return list(await asyncio.gather(*(one_turn(servers[i % 2], chat)
                                       for i, chat in enumerate(chats))))


# Two server starts and a dozen waves of turns on a shared, loaded machine.
@pytest.mark.timeout(900)
def test_concurrent_turns_on_two_processes_never_pass_a_budget_by_more_than_one_turn(
        budget_cluster, upstream):
    a, b = budget_cluster
    with a.client() as http:
        assert http.post("/api/budgets", json={"user": "admin", "period": "day",
                                               "limit_tokens": LIMIT}).status_code == 201
        chats = [http.post("/api/chats").json()["chat_id"] for _ in range(CHATS)]
    outcomes: list[list[str]] = []
    for _ in range(8):  # until a whole wave is refused
        upstream.enqueue(*[Text("spent", usage=(20, 10)) for _ in range(CHATS)])
        outcomes.append(asyncio.run(wave((a, b), chats)))
        if all(code == "budget_exceeded" for code in outcomes[-1]):
            break
    calls = len(upstream.requests)
    with b.client() as http:
        totals = http.get("/api/usage", params={"user": "admin"}).json()["totals"]
        budget = http.get("/api/budgets").json()["budgets"][0]

    assert all(code in ("", "budget_exceeded") for codes in outcomes for code in codes)
    assert all(code == "budget_exceeded" for code in outcomes[-1])
    admitted = sum(code == "" for codes in outcomes for code in codes)
    spent = totals["input_tokens"] + totals["output_tokens"]
    assert totals["calls"] == calls == admitted  # one model call per admitted turn, no more
    assert spent == admitted * TURN_TOKENS
    assert LIMIT <= spent <= LIMIT + TURN_TOKENS
    assert budget["used_tokens"] == spent and budget["remaining"]["tokens"] == 0
