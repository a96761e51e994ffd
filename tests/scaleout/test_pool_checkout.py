"""A pooled PostgreSQL connection is tested when it is taken, without a round trip when it
is healthy (gateway/postgresql/base.py)."""

from __future__ import annotations

import time

import psycopg
import pytest

from gateway.postgresql.base import works
from tests.scaleout.conftest import database


@pytest.fixture
def pg_url(request: pytest.FixtureRequest):
    """An empty database: these tests only connect (no copy of the migrated template)."""
    yield from database(request, migrated=False)


def _kill(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_healthy_connection_passes_without_a_query(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SELECT 1")
        sent = []
        conn.add_notice_handler(lambda notice: None)
        original = conn.execute
        conn.execute = lambda *a, **k: sent.append(a) or original(*a, **k)  # type: ignore
        assert works(conn)
        assert sent == []


def test_a_connection_the_server_ended_fails(pg_url: str) -> None:
    conn = psycopg.connect(pg_url, autocommit=True)
    try:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        _kill(pg_url, pid)
        for _ in range(100):  # the server's goodbye takes a moment to arrive
            if not works(conn):
                break
            time.sleep(0.02)
        assert not works(conn)
    finally:
        conn.close()
    assert not works(conn)  # and once closed


def test_the_backend_replaces_dead_pooled_connections(pg_url: str, django_db_blocker) -> None:
    """Every idle connection of the pool killed: the next query still succeeds, on a new
    connection, and no error reaches the caller."""
    from django.db.utils import ConnectionHandler

    parts = psycopg.conninfo.conninfo_to_dict(pg_url)
    handler = ConnectionHandler({"default": {
        "ENGINE": "gateway.postgresql", "NAME": parts["dbname"], "USER": "postgres",
        "HOST": "127.0.0.1", "PORT": "5432", "CONN_MAX_AGE": 0,
        "OPTIONS": {"pool": {"min_size": 2, "max_size": 2}}}})
    db = handler["default"]
    with django_db_blocker.unblock():
        _replaced(db, pg_url, parts["dbname"])


def _replaced(db, pg_url: str, name: str) -> None:
    try:
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            first = cursor.fetchone()[0]
        db.close()  # back to the pool
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()",
                          (name,))
        with db.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            second = cursor.fetchone()[0]
        assert second != first
        db.close()
    finally:
        db.close_pool()
