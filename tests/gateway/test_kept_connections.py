"""A database thread keeps its PostgreSQL connection between calls, and gives it back
before a call when it can no longer be trusted (``gateway.infra``)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway import infra


class FakeConnection:
    """The parts of Django's connection wrapper the check reads."""

    def __init__(self, **state: Any) -> None:
        self.connection = object()
        self.errors_occurred = state.get("errors", False)
        self.in_atomic_block = state.get("atomic", False)
        self.autocommit = state.get("autocommit", True)
        self.closed = 0

    def get_autocommit(self) -> bool:
        return self.autocommit

    def close(self) -> None:
        self.closed += 1
        self.connection = None


@pytest.mark.parametrize("state, alive, dropped", [
    ({}, True, False),                     # healthy: kept, no round trip
    ({"errors": True}, True, True),        # the last call failed on it
    ({"atomic": True}, True, True),        # left inside a transaction
    ({"autocommit": False}, True, True),   # left with autocommit off
    ({}, False, True),                     # the server closed it meanwhile
])
def test_a_kept_connection_is_checked_before_each_call(monkeypatch, state, alive, dropped):
    conn = FakeConnection(**state)
    monkeypatch.setattr(infra, "connection", conn)
    monkeypatch.setattr("gateway.postgresql.base.works", lambda raw: alive)
    infra._ready_kept_connection()
    assert conn.closed == (1 if dropped else 0)
    assert conn.errors_occurred is False or not dropped


def test_no_connection_yet_is_nothing_to_check(monkeypatch):
    conn = FakeConnection()
    conn.connection = None
    monkeypatch.setattr(infra, "connection", conn)
    infra._ready_kept_connection()
    assert conn.closed == 0


def test_postgresql_threads_keep_their_connection_sqlite_keeps_channels_way(settings):
    from channels.db import DatabaseSyncToAsync

    settings.GATEWAY_DB_THREADS = 8
    assert isinstance(infra._runner(lambda: None), infra.KeptConnectionSyncToAsync)
    settings.GATEWAY_DB_THREADS = 1
    assert isinstance(infra._runner(lambda: None), DatabaseSyncToAsync)
