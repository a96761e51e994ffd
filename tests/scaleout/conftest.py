"""Two real ``serve`` processes sharing PostgreSQL and Redis.

Each test gets its own PostgreSQL database and its own Redis db number. The services are
the ones on 127.0.0.1 (``GATEWAY_TEST_POSTGRES`` / ``GATEWAY_TEST_REDIS`` override); a
laptop without them skips, CI fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import need
from tests.e2e.server import ROOT, ServeProcess, free_port
from tests.fake_upstream import FakeUpstream

POSTGRES = os.environ.get("GATEWAY_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("GATEWAY_TEST_REDIS", "redis://127.0.0.1:6379")
REDIS_SERVER = shutil.which("redis-server")
_used_redis_dbs: set[int] = set()


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


_pg_template: list[str] = []  # this process's migrated database, made at its first use


def _migrated_template(config: pytest.Config) -> str:
    """A database ``manage.py migrate`` ran on once per test process; the tests' databases
    are copies (``CREATE DATABASE ... TEMPLATE``), so their first ``serve`` finds nothing
    left to migrate. Dropped at the end of the session."""
    if _pg_template:
        return _pg_template[0]
    import psycopg

    name = f"gw_scale_tmpl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _pg_template.clear()

    config.add_cleanup(drop)
    env = {**os.environ, "DATABASE_URL": f"{POSTGRES.rsplit('/', 1)[0]}/{name}",
           "REDIS_URL": "", "SECRET_KEY": "x" * 50}
    done = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    _pg_template.append(name)
    return name


def database(request: pytest.FixtureRequest, migrated: bool = True) -> Iterator[str]:
    """A database of the test's own: a copy of this process's migrated template, or
    (``migrated=False``) an empty one."""
    need(reachable("127.0.0.1", 5432), "PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    template = f' TEMPLATE "{_migrated_template(request.config)}"' if migrated else ""
    name = f"gw_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        for attempt in range(50):  # the migrate's session may take a moment to end
            try:
                conn.execute(f'CREATE DATABASE "{name}"{template}')
                break
            except psycopg.errors.ObjectInUse:
                if attempt == 49:
                    raise
                time.sleep(0.1)
    base = POSTGRES.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        # pytest-django's test database, when a pytest run of its own used this one
        # (test_rest_on_postgres): it is left behind if a connection outlived that run.
        conn.execute(f'DROP DATABASE IF EXISTS "test_{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of the test's own, migrated."""
    yield from database(request)


@pytest.fixture
def redis_url() -> Iterator[str]:
    need(reachable("127.0.0.1", 6379), "Redis is not running on 127.0.0.1:6379")
    import redis

    # A db number is claimed in db 0, so test runs in parallel (developers' worktrees)
    # never share one; a claim expires by itself if a run dies.
    claims = redis.Redis.from_url(f"{REDIS}/0")
    number = next((n for n in range(1, 16) if n not in _used_redis_dbs and
                   claims.set(f"gateway-test-db-claim:{n}", os.getpid(), nx=True, ex=900)),
                  None)
    need(number is not None, "no free Redis db number (1-15) for this test")
    _used_redis_dbs.add(number)
    url = f"{REDIS}/{number}"
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()
    _used_redis_dbs.discard(number)
    claims.delete(f"gateway-test-db-claim:{number}")


def start_cluster(tmp_path: Path, pg_url: str, redis_url: str, upstream: FakeUpstream,
                  extra_env: dict[str, str] | None = None
                  ) -> tuple[ServeProcess, ServeProcess]:
    """Two server processes on one database and one Redis, a profile on the fake
    upstream. The caller stops them."""
    env = {"DATABASE_URL": pg_url, "REDIS_URL": redis_url, "SECRET_KEY": "x" * 50,
           "GATEWAY_TURN_LEASE_SECONDS": "2", "GATEWAY_UPSTREAM_RETRIES": "0",
           "GATEWAY_WORKSPACE": str(tmp_path / "shared-workspaces"), **(extra_env or {})}
    # Generous start-up: the machine running the suite may be busy.
    first = ServeProcess(tmp_path / "a", env).start(timeout=90)
    try:
        second = ServeProcess(tmp_path / "b", env).start(timeout=90)
    except Exception:
        first.stop()
        raise
    second.admin_token = first.admin_token  # the second start found the admin existing
    with first.client() as http:
        assert http.post("/api/profiles", json={"name": "fake", "profile": {
            "provider": "openai", "model": "fake-model",
            "base_url": upstream.url}}).status_code == 201
    return first, second


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str, redis_url: str, upstream: FakeUpstream
            ) -> Iterator[tuple[ServeProcess, ServeProcess]]:
    """Two server processes on one database and one Redis, a profile on the fake upstream."""
    first, second = start_cluster(tmp_path, pg_url, redis_url, upstream)
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


class OwnRedis:
    """A redis-server of the test's own (never the shared one on 6379), so a test can
    restart it. Nothing is saved: a restart loses every key, as a crash would."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.dir = tmp_path / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "OwnRedis":
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # like a crash: no chance to save or to say goodbye
            self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    need(REDIS_SERVER is not None, "redis-server is not installed")
    server = OwnRedis(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def wait_released(server: ServeProcess, chat_id: str, timeout: float = 10) -> dict:
    """The chat's detail once its turn lock is released: that comes just after the
    turn's ``agent.turn_complete`` (the drain's flush and release), so a read right after
    the event may still see ``running``. The release must be the turn's own, not the
    sweeper's repair after the lease ran out: the log may not say it failed."""
    deadline = time.monotonic() + timeout
    with server.client() as http:
        while True:
            detail = http.get(f"/api/chats/{chat_id}").json()
            if not detail["running"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert "could not release the turn lock" not in server.log()
    return detail

