"""A burst of 300 concurrent turns on two processes sharing PostgreSQL and Redis, with
small connection pools: every turn completes with its deltas in order, no connection
error is logged, and neither server is ever given more connections than its pools."""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from pathlib import Path

import psycopg
import pytest
import redis
import websockets

from tests.fake_upstream import Text
from tests.scaleout.conftest import POSTGRES, start_cluster
from tests.scaleout.test_infrastructure_failures import errors_in

pytestmark = pytest.mark.timeout(600)

TURNS = 300
ANSWER = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"
DB_POOL, REST_THREADS, REDIS_POOL = 6, 2, 16  # per process: far fewer than the turns


class Peak:
    """Samples, in a thread, how many connections the servers hold."""

    def __init__(self, database: str, redis_url: str) -> None:
        self.database = database
        self.redis_db = int(redis_url.rsplit("/", 1)[1])
        self.redis = redis.Redis.from_url(redis_url)
        self.pg, self.rd = 0, 0
        self.names: collections.Counter[str] = collections.Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            while not self.stop.is_set():
                count = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                     (self.database,)).fetchone()[0]
                clients = [c for c in self.redis.client_list()
                           if int(c.get("db", -1)) == self.redis_db]
                # minus this sampler's own client
                self.pg, self.rd = max(self.pg, count), max(self.rd, len(clients) - 1)
                names = collections.Counter(c.get("name", "").rstrip("0123456789_-")
                                            for c in clients)
                self.names = max(self.names, names, key=lambda n: sum(n.values()))
                time.sleep(0.05)


async def open_socket(server, chat_id: str, gate: asyncio.Semaphore) -> tuple[object, dict]:
    async with gate:  # the burst is of turns; sockets open a few dozen at a time
        ws = await websockets.connect(
            f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}", open_timeout=60,
            max_size=None)
        return ws, json.loads(await asyncio.wait_for(ws.recv(), 60))


async def one_turn(ws, state: dict, start: asyncio.Event) -> tuple[list[dict], str]:
    await start.wait()
    await ws.send(json.dumps({"type": "user_message", "content": "go"}))
    events = [state]
    while events[-1]["type"] != "agent.turn_complete":
        events.append(json.loads(await asyncio.wait_for(ws.recv(), 120)))
    await ws.close()
    text = "".join(e["data"]["text"] for e in events if e["type"] == "agent.text_delta")
    return events, text


@pytest.mark.slow
def test_300_concurrent_turns_on_two_processes_complete_in_order(
        tmp_path: Path, pg_url: str, redis_url: str, upstream):
    a, b = start_cluster(tmp_path, pg_url, redis_url, upstream, {
        "GATEWAY_DB_POOL_SIZE": str(DB_POOL), "GATEWAY_REDIS_POOL_SIZE": str(REDIS_POOL),
        "GATEWAY_REST_THREADS": str(REST_THREADS),
        "GATEWAY_TURN_LEASE_SECONDS": "30", "GATEWAY_AUTH_FAIL_LIMIT": "0"})
    peak = Peak(pg_url.rsplit("/", 1)[1], redis_url)
    try:
        for _ in range(TURNS):
            upstream.enqueue(Text(ANSWER, chunk_size=3, delay=0.002))
        with a.client() as http:
            chats = [http.post("/api/chats").json()["chat_id"] for _ in range(TURNS)]
        peak.thread.start()

        async def burst():
            servers = [a if i % 2 == 0 else b for i in range(TURNS)]
            gate, start = asyncio.Semaphore(25), asyncio.Event()
            sockets = await asyncio.gather(*(open_socket(s, c, gate)
                                             for s, c in zip(servers, chats)))
            turns = [asyncio.create_task(one_turn(ws, state, start))
                     for ws, state in sockets]
            start.set()  # all 300 user messages go at once
            return await asyncio.gather(*turns)

        results = asyncio.run(burst())
    finally:
        peak.stop.set()
        a.stop()
        b.stop()
    for events, text in results:
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # every event, in order
        assert [e for e in events if e["type"] == "agent.error"] == []
        assert text == ANSWER
        assert events[-1]["data"]["stop_reason"] == "end_turn"
    for server in (a, b):
        log = server.log()
        assert errors_in(log) == []
        assert "Too many connections" not in log and "No connection available" not in log
    # The pools bound what the servers open, whatever the load. PostgreSQL, per process:
    # a connection kept by each database thread and REST thread, and two for the rest.
    # Redis: the async pool, the event hub's own two (its writer and its listener), one
    # per thread that reads the shared versions (the database and REST threads, and up
    # to three more: the main thread at start-up, the request thread, the job
    # scheduler's), and Django's cache (its own pool, a few at most).
    assert peak.pg <= 2 * (DB_POOL + REST_THREADS + 2)
    assert peak.rd <= 2 * (REDIS_POOL + 2 + DB_POOL + REST_THREADS + 3 + 2), peak.names
