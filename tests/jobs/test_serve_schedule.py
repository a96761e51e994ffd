"""A real ``serve`` runs a job on its schedule, with the clock moved by the test."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fake_upstream import Text
from tests.jobs.conftest import START_TIMEOUT, client, finished, runs_of, wait_for

MINUTE = dt.timedelta(minutes=1)
# Real server starts on a shared machine; nothing here waits for the clock itself.
pytestmark = pytest.mark.timeout(600)


def test_a_job_every_minute_runs_its_prompt_into_its_chat(server, clock, start_minute,
                                                          upstream):
    clock.set(start_minute + dt.timedelta(seconds=5))
    upstream.enqueue(Text("report one"), Text("report two"), Text("report three"))
    with client(server) as http:
        job = http.post("/api/jobs", json={
            "name": "minutely", "prompt": "Write the report.",
            "schedule": {"kind": "cron", "cron": "* * * * *", "timezone": "UTC"}}).json()
        assert job["next_fire_at"].startswith((start_minute + MINUTE).isoformat()[:19])
        for fire in range(1, 4):
            clock.set(start_minute + fire * MINUTE + dt.timedelta(seconds=5))
            runs = wait_for(lambda: finished(r := runs_of(http, job["id"]), fire) and r,
                            what=f"fire {fire}")
            assert len(runs) == fire  # the clock crossed one slot: one more run, no more
        chat = http.get(f"/api/chats/{job['chat_id']}").json()
    assert [r["status"] for r in runs] == ["succeeded"] * 3
    assert [r["scheduled_for"][:19] for r in reversed(runs)] == [
        (start_minute + n * MINUTE).isoformat()[:19] for n in range(1, 4)]
    assert all(r["usage"]["output_tokens"] > 0 and r["duration_ms"] is not None for r in runs)
    said = [(m["role"], m["content"]) for m in chat["messages"] if m["role"] != "system"]
    assert said == [("user", "Write the report."), ("assistant", "report one"),
                    ("user", "Write the report."), ("assistant", "report two"),
                    ("user", "Write the report."), ("assistant", "report three")]
    # The model saw the earlier runs: context accumulates in the job's chat.
    assert len(upstream.requests[-1]["messages"]) > len(upstream.requests[0]["messages"])


def test_missed_fires_after_downtime_run_once(server, clock, start_minute, upstream):
    clock.set(start_minute + dt.timedelta(seconds=5))
    with client(server) as http:
        job = http.post("/api/jobs", json={
            "name": "catch-up", "prompt": "Check.",
            "schedule": {"kind": "cron", "cron": "* * * * *"}}).json()
        server.stop()
        clock.set(start_minute + 10 * MINUTE + dt.timedelta(seconds=5))  # ten slots missed
        server.start(timeout=START_TIMEOUT)
        runs = wait_for(lambda: finished(r := runs_of(http, job["id"]), 1) and r)
        after = http.get(f"/api/jobs/{job['id']}").json()
    assert len(runs) == 1 and runs[0]["status"] == "succeeded"
    assert runs[0]["scheduled_for"][:19] == (start_minute + MINUTE).isoformat()[:19]
    # The next slot is one after the restart (which took real time), not a missed one.
    assert after["next_fire_at"][:19] >= (start_minute + 11 * MINUTE).isoformat()[:19]
