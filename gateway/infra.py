"""The servers under the gateway: database threads, and what counts as their failure.

The threads that run the database work of sockets and turns:

Channels' ``database_sync_to_async`` runs every call of a process on one thread: right
for SQLite (one writer), a wall for PostgreSQL, where 200 chats' turns then queue
behind each other's round trips. With ``GATEWAY_DB_THREADS`` > 1 (PostgreSQL: the size
of the connection pool, see settings) calls run on a pool of that many threads, each
taking a connection from Django's psycopg pool for the call and giving it back after
(``close_old_connections``, as Channels does), so threads never outnumber connections.

``db(fn)`` also retries a call once when its connection died under it (a PostgreSQL
restart, ``pg_terminate_backend``): the failed call's transaction was rolled back, and
the retry runs on a fresh connection, after the pool tested its idle connections
(``ConnectionPool.check``: the others may have died with it). A connection that died
while idle in the pool is replaced when it is taken (``gateway/postgresql/base.py``).
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, TypeVar

from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)
T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=settings.GATEWAY_DB_THREADS,
                                           thread_name_prefix="gateway-db")
        return _executor


def _runner(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    if settings.GATEWAY_DB_THREADS <= 1:
        return database_sync_to_async(fn)
    return DatabaseSyncToAsync(fn, thread_sensitive=False, executor=_threads())


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the database connection itself failed (not the query)."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    # psycopg marks a dead connection; "server closed the connection", "terminating
    # connection due to administrator command" (pg_terminate_backend) and the like.
    text = str(exc).lower()
    return any(part in text for part in ("terminat", "closed", "connection", "broken"))


def _purge_dead_connections() -> None:
    """Drop the pool's idle connections that no longer work (PostgreSQL restarted or
    killed them) and open new ones. No pool (SQLite): nothing to do."""
    pool = getattr(connection, "pool", None)
    if pool is not None:
        pool.check()


def db(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """``fn`` as a coroutine function on the database threads, retried once on a lost
    connection."""
    run = _runner(fn)

    def after_purge(*args: Any, **kwargs: Any) -> T:
        _purge_dead_connections()
        return fn(*args, **kwargs)

    retry = _runner(after_purge)

    @functools.wraps(fn)
    async def call(*args: Any, **kwargs: Any) -> T:
        try:
            return await run(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            if not connection_lost(exc):
                raise
            logger.warning("database connection lost in %s (%s); retrying once",
                           getattr(fn, "__qualname__", fn), exc)
            return await retry(*args, **kwargs)
    return call


def is_infrastructure_error(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL or Redis failing (gone, restarted, out of
    connections) rather than a bug: such a failure ends a turn with
    ``infrastructure_error`` and is logged as a warning."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, ConnectionError,
                            InterfaceError, OperationalError, TimeoutError))
