"""A Redis connection of its own for the event hub's hot path, read through hiredis.

The event hub sends every event of every chat to Redis (a script that numbers it) and
reads every event back from pub/sub. Through redis-py each costs about 30 us of Python
on each side (a pipeline's command objects and response callbacks; ``PubSub.get_message``
building a dict per message), on the event loop of a process that is bound by the
interpreter under load. Here the commands are packed into one buffer and the replies
parsed by ``hiredis.Reader`` (the parser redis-py itself uses), about 1 us a message.

redis-py still opens the connection: the URL's host or socket, TLS, username, password
and database are its ``Connection.connect`` (through the pool's connection class and
arguments, ``gateway.layers.redis_pool``), in RESP2. After that handshake nothing is
left unread, and the connection's stream reader and writer are used directly.

A ``Wire`` is one connection for one task (the hub's writer, or its listener): replies
come in the order commands were sent, so two tasks never share one. Any failure or
cancellation in the middle of a request closes it (what was on the wire is unknown);
the next ``open`` makes a new one.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import hiredis

# redis-py's default socket timeout for the gateway (settings.GATEWAY_REDIS_POOL).
DEFAULT_TIMEOUT = 30.0


class WireError(ConnectionError):
    """The connection failed, timed out or said something unparseable: it is closed."""


def client_name(text: str) -> str:
    """``text`` as a name Redis takes in ``CLIENT SETNAME`` (no spaces or special
    characters: a thread named "Thread-5 (run)" would make the connection fail)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:64]


def pack(*args: Any) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Wire:
    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT, name: str = "") -> None:
        self.url = url
        self.timeout = timeout
        self.name = client_name(name)  # what it is in Redis's CLIENT LIST
        self._conn: Any = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._parser = hiredis.Reader()

    @property
    def is_open(self) -> bool:
        """Open, on the running event loop (a connection cannot move between loops)."""
        return self._writer is not None and self._loop is asyncio.get_running_loop()

    async def open(self) -> None:
        from gateway.layers import redis_pool

        pool = redis_pool(self.url)
        kwargs = {**pool.connection_kwargs, "protocol": 2}
        if self.name:
            kwargs["client_name"] = self.name
        conn = pool.connection_class(**kwargs)
        try:
            await conn.connect()
        except Exception as exc:
            raise WireError(f"could not connect to Redis: {exc}") from exc
        reader, writer = getattr(conn, "_reader", None), getattr(conn, "_writer", None)
        if reader is None or writer is None:  # a redis-py that keeps them elsewhere
            await conn.disconnect()
            raise WireError("this redis-py connection exposes no stream reader/writer")
        self._conn, self._reader, self._writer = conn, reader, writer
        self._loop = asyncio.get_running_loop()
        self._parser = hiredis.Reader()

    def close(self) -> None:
        writer, self._writer, self._reader, self._conn = self._writer, None, None, None
        if writer is not None and self._loop is not None and not self._loop.is_closed():
            writer.close()

    async def request(self, data: bytes, count: int) -> list[Any]:
        """Send ``data`` (``count`` packed commands) and return their ``count`` replies,
        in order (an error reply is a ``hiredis.ReplyError`` in the list)."""
        if not self.is_open:
            raise WireError("the connection is closed")
        try:
            self._writer.write(data)  # type: ignore[union-attr]
            await self._writer.drain()  # type: ignore[union-attr]
            replies: list[Any] = []
            while len(replies) < count:
                replies.extend(await self.read())
            return replies
        except OSError as exc:
            self.close()
            raise WireError(f"Redis connection failed: {exc!r}") from exc
        except BaseException:
            self.close()  # the replies of what was sent can no longer be told apart
            raise

    def send(self, data: bytes) -> None:
        """Send without waiting for replies (pub/sub: they come through ``read``)."""
        if not self.is_open:
            raise WireError("the connection is closed")
        self._writer.write(data)  # type: ignore[union-attr]

    async def read(self, timeout: float | None = None, quiet_ok: bool = False
                   ) -> list[Any]:
        """Every reply or pub/sub message that is complete, waiting for at least one:
        after ``timeout`` seconds (the socket timeout by default) ``WireError``, or with
        ``quiet_ok`` an empty list (the connection stays open)."""
        parser, reader = self._parser, self._reader
        if reader is None:
            raise WireError("the connection is closed")
        out: list[Any] = []
        try:
            while True:
                reply = parser.gets()
                if reply is False:
                    if out:
                        return out
                    try:
                        async with asyncio.timeout(
                                self.timeout if timeout is None else timeout):
                            data = await reader.read(65536)
                    except TimeoutError:
                        if quiet_ok:
                            return out
                        raise
                    if not data:
                        raise WireError("Redis closed the connection")
                    parser.feed(data)
                    continue
                out.append(reply)
        except WireError:
            self.close()
            raise
        except (TimeoutError, OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise WireError(f"Redis connection failed: {exc!r}") from exc


class SyncWire:
    """The blocking counterpart, for a thread's own short commands (the shared
    versions of ``gateway.shared_version``, read before a database call): redis-py's
    client costs about 110 us of Python a GET on the benchmark's machine, this about
    20. Opened by redis-py's ``Connection`` from ``pool`` (URL, TLS, auth, database, in
    RESP2); one per thread, never shared. A failure closes it and raises ``WireError``;
    the next command opens a new one. For idempotent commands (GET and the like): a
    command is sent twice when a kept connection turns out dead."""

    def __init__(self, pool: Any, name: str = "") -> None:
        self.pool = pool  # a synchronous redis-py ConnectionPool
        self.name = client_name(name)  # what it is in Redis's CLIENT LIST
        self._conn: Any = None
        self._sock: Any = None
        self._parser = hiredis.Reader()

    def command(self, *args: Any) -> Any:
        """The reply (an error reply is returned as a ``hiredis.ReplyError``). A kept
        connection that fails (Redis restarted since the last command) is replaced and
        the command sent once more."""
        data = pack(*args)
        if self._sock is not None:
            try:
                return self._roundtrip(data)
            except WireError:
                pass  # stale: once more on a new connection
        self._open()
        return self._roundtrip(data)

    def _roundtrip(self, data: bytes) -> Any:
        try:
            self._sock.sendall(data)
            while True:
                reply = self._parser.gets()
                if reply is not False:
                    return reply
                data = self._sock.recv(65536)
                if not data:
                    raise WireError("Redis closed the connection")
                self._parser.feed(data)
        except WireError:
            self.close()
            raise
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise WireError(f"Redis connection failed: {exc!r}") from exc

    def _open(self) -> None:
        kwargs = {**self.pool.connection_kwargs, "protocol": 2}
        if self.name:
            kwargs["client_name"] = self.name
        conn = self.pool.connection_class(**kwargs)
        try:
            conn.connect()
        except Exception as exc:
            raise WireError(f"could not connect to Redis: {exc}") from exc
        sock = getattr(conn, "_sock", None)
        if sock is None:  # a redis-py that keeps it elsewhere
            conn.disconnect()
            raise WireError("this redis-py connection exposes no socket")
        self._conn, self._sock, self._parser = conn, sock, hiredis.Reader()

    def close(self) -> None:
        conn, self._conn, self._sock = self._conn, None, None
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:  # noqa: BLE001 - it is being dropped anyway
                pass
