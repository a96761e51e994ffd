"""Django's PostgreSQL backend, with a cheaper test of connections taken from the pool.

Django's ``CONN_HEALTH_CHECKS`` makes the psycopg pool send an empty query before it hands
out a connection: a round trip before every database call of the gateway (each call takes
a connection and gives it back). A connection the server closed (restart,
``pg_terminate_backend``, idle timeout) has already been told so: the server's goodbye, or
the end of the stream, is waiting on its socket. So the socket is looked at without
waiting, and only a connection with something to read gets the empty query; a dead one is
dropped and the pool tests its other idle connections before handing out a fresh one.
``settings.py`` selects this backend for ``DATABASE_URL`` (``ENGINE``).
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.postgresql import base


def works(conn: Any) -> bool:
    """Whether a connection fresh from the pool can run a query."""
    if conn.closed:
        return False
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if not poller.poll(0):
        return True  # nothing arrived while it was idle: the server has not left
    try:
        conn.execute("")  # a notice, or the server's goodbye: ask
    except Exception:  # noqa: BLE001 - any failure means this one is not handed out
        return False
    return True


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        conn = super().get_new_connection(conn_params)
        pool = self.pool
        if pool is None or works(conn):
            return conn
        pool.putconn(conn)  # closed: the pool discards it and opens a replacement
        pool.check()  # the others may be dead too (a restart ends them all)
        return super().get_new_connection(conn_params)
