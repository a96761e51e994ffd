"""Real ``serve`` processes under a clock the test drives (``tests/jobs/clock.py``)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream
from tests.jobs.clock import FakeClock, minute_start

# Generous: a loaded machine (and libfaketime) makes a first start slow.
START_TIMEOUT = 300
FAST = {"GATEWAY_JOBS_POLL_SECONDS": "0.5", "GATEWAY_NOTIFY_POLL_SECONDS": "0.5",
        "GATEWAY_NOTIFY_BACKOFF_SECONDS": "0.2", "GATEWAY_UPSTREAM_RETRIES": "0",
        "GATEWAY_NOTIFY_UNSAFE_ANY_HOST": "1", "SECRET_KEY": "k" * 50}


@pytest.fixture
def clock(tmp_path: Path) -> FakeClock:
    return FakeClock(tmp_path / "faketime")


@pytest.fixture
def start_minute() -> dt.datetime:
    """An hour from now, at a minute's start: where the test's clock begins."""
    return minute_start(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))


def client(proc: ServeProcess) -> httpx.Client:
    """An API client with room for a slow, shared machine, a new connection a request:
    Twisted runs its timers by the wall clock, so each jump of the fake clock fires the
    server's 60 s idle timeout of kept-alive connections, and a request sent on one just
    then got "Server disconnected without sending a response" (seen once in a full run)."""
    return httpx.Client(base_url=proc.url, timeout=60,
                        limits=httpx.Limits(max_keepalive_connections=0),
                        headers={"Authorization": f"Bearer {proc.admin_token}"})


def add_profile(http: httpx.Client, upstream: FakeUpstream) -> None:
    assert http.post("/api/profiles", json={"name": "fake", "profile": {
        "provider": "openai", "model": "fake-model", "base_url": upstream.url}}
    ).status_code == 201


@pytest.fixture
def server(tmp_path: Path, clock: FakeClock, upstream: FakeUpstream
           ) -> Iterator[ServeProcess]:
    """One ``serve`` on SQLite under the test's clock, with a profile on the fake upstream."""
    proc = ServeProcess(tmp_path / "data", {**FAST, **clock.env}).start(timeout=START_TIMEOUT)
    try:
        with client(proc) as http:
            add_profile(http, upstream)
        yield proc
    finally:
        proc.stop()


def wait_for(check: Callable[[], Any], timeout: float = 90, what: str = "") -> Any:
    """Poll ``check`` until it returns something true (no timing is asserted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def runs_of(http: httpx.Client, job_id: int) -> list[dict]:
    response = http.get(f"/api/jobs/{job_id}/runs", params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["runs"]


def finished(runs: list[dict], count: int) -> bool:
    return len(runs) >= count and all(r["status"] != "running" for r in runs)
