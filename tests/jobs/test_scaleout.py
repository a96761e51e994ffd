"""Two ``serve`` processes on PostgreSQL + Redis: each due fire runs exactly once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.e2e.server import ServeProcess
from tests.jobs.conftest import FAST, START_TIMEOUT, add_profile, client, finished, runs_of, \
    wait_for
from tests.scaleout.conftest import pg_url, redis_url  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(1200)
MINUTE = dt.timedelta(minutes=1)
FIRES = 20


@pytest.mark.slow
def test_two_processes_fire_each_slot_exactly_once(tmp_path: Path, pg_url, redis_url,  # noqa: F811
                                                   clock, start_minute, upstream):
    env = {**FAST, **clock.env, "DATABASE_URL": pg_url, "REDIS_URL": redis_url}
    first = ServeProcess(tmp_path / "a", env).start(timeout=START_TIMEOUT)
    second = ServeProcess(tmp_path / "b", env).start(timeout=START_TIMEOUT)
    try:
        clock.set(start_minute + dt.timedelta(seconds=5))  # after the (slow) starts
        with client(first) as http:
            add_profile(http, upstream)
            job = http.post("/api/jobs", json={
                "name": "every-minute", "prompt": "Tick.",
                "schedule": {"kind": "cron", "cron": "* * * * *"}}).json()
            for fire in range(1, FIRES + 1):
                clock.set(start_minute + fire * MINUTE + dt.timedelta(seconds=5))
                runs = wait_for(lambda: finished(r := runs_of(http, job["id"]), fire) and r,
                                what=f"fire {fire}")
                assert len(runs) == fire
            chat = http.get(f"/api/chats/{job['chat_id']}").json()
    finally:
        first.stop()
        second.stop()
    slots = sorted(r["scheduled_for"][:19] for r in runs)
    assert slots == [(start_minute + n * MINUTE).isoformat()[:19] for n in range(1, FIRES + 1)]
    assert all(r["status"] == "succeeded" for r in runs)
    prompts = [m for m in chat["messages"] if m["role"] == "user"]
    assert len(prompts) == FIRES and len(upstream.requests) == FIRES
