"""Redis restarted and PostgreSQL connections killed while a turn streams: the turn
recovers or ends cleanly, the history stays valid, and the chat stays usable."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import psycopg
import pytest

from tests.fake_upstream import Text
from tests.scaleout.conftest import POSTGRES, OwnRedis, start_cluster, wait_released
from tests.scaleout.test_two_processes import WORDS, new_chat, open_socket, read_until

pytestmark = pytest.mark.timeout(300)


def strictly_rising(events: list[dict]) -> bool:
    seqs = [e["seq"] for e in events]
    return all(b > a for a, b in zip(seqs, seqs[1:]))


def valid_history(messages: list[dict]) -> bool:
    """Every assistant tool call has its result, and every turn ends with an answer."""
    answered = {m.get("tool_call_id") for m in messages if m["role"] == "tool"}
    calls = [c["id"] for m in messages if m["role"] == "assistant"
             for c in (m.get("tool_calls") or [])]
    last = messages[-1] if messages else None
    return all(c in answered for c in calls) and last is not None and \
        last["role"] == "assistant" and not last.get("tool_calls")


def errors_in(log: str) -> list[str]:
    return [line for line in log.splitlines() if '"level": "ERROR"' in line
            or '"level":"ERROR"' in line or "Traceback" in line]


async def a_turn(server, chat_id: str, content: str) -> list[dict]:
    ws, _ = await open_socket(server, chat_id)
    await ws.send(json.dumps({"type": "user_message", "content": content}))
    events = await read_until(ws, "agent.turn_complete", timeout=30)
    await ws.close()
    return events


def text_of(events: list[dict]) -> str:
    return "".join(e["data"]["text"] for e in events if e["type"] == "agent.text_delta")


def test_a_redis_restart_mid_turn_is_survived_and_the_chat_stays_usable(
        tmp_path: Path, pg_url: str, own_redis: OwnRedis, upstream):
    a, b = start_cluster(tmp_path, pg_url, own_redis.url, upstream)
    release = threading.Event()
    try:
        upstream.enqueue(Text(WORDS, pause_after=3, release=release), Text("after restart"))
        chat_id = new_chat(a)

        async def scenario():
            # The turn runs on a; one socket on each process watches it.
            ws_a, _ = await open_socket(a, chat_id)
            ws_b, _ = await open_socket(b, chat_id)
            await ws_a.send(json.dumps({"type": "user_message", "content": "go"}))
            seen_a = await read_until(ws_a, "agent.text_delta")
            seen_b = await read_until(ws_b, "agent.text_delta")
            await asyncio.to_thread(own_redis.restart)
            release.set()
            seen_a += await read_until(ws_a, "agent.turn_complete", timeout=60)
            seen_b += await read_until(ws_b, "agent.turn_complete", timeout=60)
            await ws_a.close()
            await ws_b.close()
            return seen_a, seen_b

        seen_a, seen_b = asyncio.run(scenario())
        for seen in (seen_a, seen_b):
            assert strictly_rising(seen)
            assert seen[-1]["type"] == "agent.turn_complete"
        detail = wait_released(a, chat_id)
        assert detail["running"] is False and detail["queued"] == []
        assert valid_history(detail["messages"])
        # Recovered, not just ended: the whole answer is in the history.
        assert [m["content"] for m in detail["messages"]] == ["go", WORDS]
        # The chat is usable through either process, with a fresh Redis.
        after = asyncio.run(a_turn(b, chat_id, "again"))
        assert text_of(after) == "after restart"
        assert strictly_rising(after)
    finally:
        release.set()
        a.stop()
        b.stop()
    for server in (a, b):
        assert errors_in(server.log()) == []


def terminate_backends(database: str) -> int:
    """pg_terminate_backend on every connection to ``database`` (never another one)."""
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (database,)).fetchall()
    return len(rows)


def test_killed_postgresql_connections_mid_turn_are_replaced(
        tmp_path: Path, pg_url: str, redis_url: str, upstream):
    a, b = start_cluster(tmp_path, pg_url, redis_url, upstream)
    database = pg_url.rsplit("/", 1)[1]
    release = threading.Event()
    try:
        upstream.enqueue(Text(WORDS, pause_after=3, release=release),
                         Text("still usable"))
        chat_id = new_chat(a)

        async def scenario():
            ws, _ = await open_socket(a, chat_id)
            await ws.send(json.dumps({"type": "user_message", "content": "go"}))
            seen = await read_until(ws, "agent.text_delta")
            killed = await asyncio.to_thread(terminate_backends, database)
            release.set()
            seen += await read_until(ws, "agent.turn_complete", timeout=60)
            await ws.close()
            return killed, seen

        killed, seen = asyncio.run(scenario())
        assert killed > 0  # the pools held connections, and they died
        assert strictly_rising(seen)
        assert [e for e in seen if e["type"] == "agent.error"] == []
        assert text_of(seen) == WORDS
        detail = wait_released(a, chat_id)
        assert [(m["role"], m["status"]) for m in detail["messages"]] == \
            [("user", "done"), ("assistant", "done")]
        assert detail["running"] is False
        terminate_backends(database)  # and once more between turns
        after = asyncio.run(a_turn(b, chat_id, "again"))
        assert text_of(after) == "still usable"
    finally:
        release.set()
        a.stop()
        b.stop()
    for server in (a, b):
        assert errors_in(server.log()) == []
