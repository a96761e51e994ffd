"""The servers under the gateway: database threads, and what counts as their failure.

The threads that run the database work of sockets and turns:

Channels' ``database_sync_to_async`` runs every call of a process on one thread: right
for SQLite (one writer), a wall for PostgreSQL, where 200 chats' turns then queue
behind each other's round trips. With ``GATEWAY_DB_THREADS`` > 1 (PostgreSQL:
``GATEWAY_DB_POOL_SIZE``, see settings) calls run on a pool of that many threads, each
keeping one connection from Django's psycopg pool between calls
(``KeptConnectionSyncToAsync``); the pool has room for every such thread and for the
REST threads, so no thread ever waits for a connection another one keeps.

``db(fn)`` also retries a call once when its connection died under it (a PostgreSQL
restart, ``pg_terminate_backend``): the failed call's transaction was rolled back, and
the retry runs on a fresh connection, after the pool tested its idle connections
(``ConnectionPool.check``: the others may have died with it). A kept connection that
died between calls is given back before the next call; one that died while idle in the
pool is replaced when it is taken (``gateway/postgresql/base.py``).
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, TypeVar

from asgiref.sync import SyncToAsync, sync_to_async
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
    return KeptConnectionSyncToAsync(fn, thread_sensitive=False, executor=_threads())


class KeptConnectionSyncToAsync(SyncToAsync):
    """A call on a thread that keeps its PostgreSQL connection between calls.

    Channels' ``DatabaseSyncToAsync`` gives the connection back to the pool after every
    call and takes one before the next: the pool's lock and bookkeeping, Django's set-up
    of the connection and a look at its socket, each call (about a quarter of a turn's
    database time in Python, and each lock or system call a chance to wait for the
    interpreter). The threads of ``_threads`` and ``_rest_threads`` keep theirs instead
    (the pool is sized for all of them, see settings), and before each call the kept
    connection is looked at the same way the pool's are: one that had an error, was left
    in a transaction, or that the server closed (``works``) is given back, and the call
    takes a fresh one."""

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        _ready_kept_connection()
        return super().thread_handler(loop, *args, **kwargs)


def _ready_kept_connection() -> None:
    from gateway.postgresql.base import works

    conn = connection.connection
    if conn is None:
        return
    if (connection.errors_occurred or connection.in_atomic_block
            or not connection.get_autocommit() or not works(conn)):
        connection.close()  # to the pool, which drops it if it is broken
        connection.errors_occurred = False


# --- the threads of REST views ---------------------------------------------------------
#
# Django runs each ASGI request in a context of its own, and asgiref gives a
# thread-sensitive call in such a context a new thread: a REST view then ran on a fresh
# thread, which opened a fresh database connection (SQLite: the file and its PRAGMAs),
# every request, about half of a fast request's time. Under the real server
# (``serve``) views run on a few kept threads instead, whose connections are reused
# (SQLite) or taken from the pool and given back (PostgreSQL), as the turns' calls do.
# Elsewhere (the test client, whose views must share the test's transaction) they stay
# thread-sensitive.

_rest_executor: ThreadPoolExecutor | None = None
_serving = False


def serving() -> None:
    """Called once ``serve``'s event loop runs: views go to the kept threads."""
    global _serving
    _serving = True
    _request_boundaries_without_threads()


def _request_boundaries_without_threads() -> None:
    """Django's receivers of ``request_started`` are sync: under ASGI running them costs
    every request a thread hop before its view. Under ``serve`` they have nothing to do:
    they reset and close the database connections of the request's own thread (asgiref
    makes a thread per request), which does not exist yet when the request starts. The
    end of the request (``response.close`` on that thread, with ``request_finished``)
    stays as Django does it."""
    from django.core import signals
    from django.db import close_old_connections, reset_queries

    signals.request_started.disconnect(close_old_connections)
    signals.request_started.disconnect(reset_queries)


def _rest_threads() -> ThreadPoolExecutor:
    global _rest_executor
    with _executor_lock:
        if _rest_executor is None:
            _rest_executor = ThreadPoolExecutor(max_workers=settings.GATEWAY_REST_THREADS,
                                                thread_name_prefix="gateway-rest")
        return _rest_executor


_sensitive_executor: ThreadPoolExecutor | None = None


def _request_thread() -> ThreadPoolExecutor:
    """One kept thread for what Django's ASGI handler still runs thread-sensitive under
    ``serve`` (``response.close`` with ``request_finished``): the views run on the kept
    REST threads, so nothing a request does needs a thread of its own."""
    global _sensitive_executor
    with _executor_lock:
        if _sensitive_executor is None:
            _sensitive_executor = ThreadPoolExecutor(max_workers=1,
                                                     thread_name_prefix="gateway-request")
        return _sensitive_executor


def request_context() -> Any:
    """The thread-sensitive context Django's ASGI handler opens for each request. Its
    default makes a thread for the request's first thread-sensitive call and joins it
    (from yet another new thread) at the end: two threads started a request, about a
    fifth of a fast request's time. Under ``serve``: the one kept thread instead."""
    from asgiref.sync import ThreadSensitiveContext

    if _serving:
        return ThreadSensitiveContext(executor=_request_thread())
    return ThreadSensitiveContext()


def view_runner(fn: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """``fn`` (a view's whole sync part) as a coroutine function: on the kept threads
    under ``serve``, thread-sensitive otherwise (decided per call)."""
    sensitive = sync_to_async(fn, thread_sensitive=True)
    kept: dict[ThreadPoolExecutor, Callable[..., Awaitable[T]]] = {}  # made on first use

    async def call(*args: Any, **kwargs: Any) -> T:
        if not _serving:
            return await sensitive(*args, **kwargs)
        threads = _rest_threads()  # one for the process (tests make a new one each)
        runner = kept.get(threads)
        if runner is None:
            kept.clear()
            kind = KeptConnectionSyncToAsync if settings.GATEWAY_DB_THREADS > 1 \
                else DatabaseSyncToAsync  # SQLite: its one connection, kept (settings)
            runner = kept[threads] = kind(fn, thread_sensitive=False, executor=threads)
        return await runner(*args, **kwargs)
    return call


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
