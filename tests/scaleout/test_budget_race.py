"""Budgets hold across server processes: turns started at the same moment on two
``serve`` processes sharing PostgreSQL never take a budget past its limit by more than
one turn (the admission locks the budget row and counts the turns still running)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.fake_upstream import Text

LIMIT = 100
TURN_TOKENS = 30  # every reply below: 20 in, 10 out
CHATS = 6


async def one_turn(server, chat_id: str) -> str:
    """Run a message to the end of its turn; the error code, or "" when it ran."""
    url = f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}"
    async with websockets.connect(url) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] == "agent.state"
        await ws.send(json.dumps({"type": "user_message", "content": "spend"}))
        code = ""
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 30))
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
        cluster, upstream):
    a, b = cluster
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
