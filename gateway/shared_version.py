"""A version token every server process reads, for caches kept per process.

A process keeps something it read from the database (the configuration snapshot of
``chats.config``, the checked tokens of ``gateway.auth``) together with the version it
read first; when the version it reads now differs, it reads the database again. Whoever
changes the rows behind such a cache calls ``bump``: at once, so the changing process and
its transaction see the change, and again after the commit, so another process that
re-read in between (and got the rows before the commit) re-reads once more.

The version is a random token in Django's cache: per process in the embedded default (one
server process), in Redis when ``REDIS_URL`` is set, so every process sees a change on its
next read. A missing token (the cache was cleared, Redis restarted) counts as a change.
Embedded, management commands (``shell``, ``import_clotho``, ``issue_token``) are other
processes with their own cache, so a bump also replaces a stamp file in the data
directory, whose inode and modification time every process reads with one ``stat``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from django.db import transaction

from gateway.redis_wire import SyncWire

logger = logging.getLogger(__name__)


def _read(key: str) -> Any:
    """``cache.get(key)``; with Redis, one GET on a connection kept per thread and read
    through hiredis (``gateway.redis_wire.SyncWire``: Django's cache makes a new client
    object at every call, and redis-py's command path is five times the Python) that
    returns the stored bytes as they are: a version is only ever compared, never
    unpacked."""
    wire = _raw_wire()
    if wire is None:
        return cache.get(key)
    name = _local.names.get(key)
    if name is None:
        name = _local.names[key] = cache.make_key(key).encode()
    reply = wire.command(b"GET", name)
    if isinstance(reply, Exception):  # an error reply (NOAUTH, WRONGTYPE, LOADING...)
        raise reply
    return reply


def _raw_wire() -> Any:
    backend = cache._connections[cache._alias] if hasattr(cache, "_connections") else cache
    wire = getattr(_local, "wire", None)
    if wire is None or _local.backend is not backend:
        if wire:
            wire.close()
        get_client = getattr(getattr(backend, "_cache", None), "get_client", None)
        wire = SyncWire(get_client().connection_pool,
                        name=f"gw-versions-{threading.current_thread().name}") \
            if isinstance(backend, RedisCache) and get_client else False
        _local.wire, _local.backend, _local.names = wire, backend, {}
    return wire or None


_local = threading.local()


class SharedVersion:
    def __init__(self, key: str, stamp_name: str) -> None:
        self.key = key  # in Django's cache
        self.stamp_name = stamp_name  # a file in GATEWAY_DATA_DIR (embedded default)
        self._warned = -1e9

    def current(self) -> str:
        """The version now: read it before the rows it guards, never after. When the
        cache cannot be read (Redis away), a version nobody had: every reader reads the
        database, and nothing fails because the cache did."""
        try:
            version = _read(self.key)
            if version is None:
                cache.add(self.key, uuid.uuid4().hex, timeout=None)
                version = _read(self.key) or ""
        except Exception as exc:  # noqa: BLE001 - any cache backend's failure
            now = time.monotonic()
            if now - self._warned > 60:
                self._warned = now
                logger.warning("could not read %s from the cache (%r); reading the "
                               "database every time until it answers", self.key, exc)
            return "unknown:" + uuid.uuid4().hex
        if not settings.REDIS_URL:
            version += ":" + self._file_stamp()
        return version

    def bump(self, **kwargs: Any) -> None:
        """The rows behind the version changed (a signal receiver: takes any arguments)."""
        self._new()
        transaction.on_commit(self._new)

    def _new(self) -> None:
        cache.set(self.key, uuid.uuid4().hex, timeout=None)
        if not settings.REDIS_URL:
            self._touch_stamp()

    def _stamp_file(self) -> Path:
        return Path(settings.GATEWAY_DATA_DIR) / self.stamp_name

    def _file_stamp(self) -> str:
        try:
            st = os.stat(self._stamp_file())
        except FileNotFoundError:
            return ""
        return f"{st.st_ino}:{st.st_mtime_ns}"

    def _touch_stamp(self) -> None:
        path = self._stamp_file()
        tmp = path.with_name(f".{self.stamp_name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
        with contextlib.suppress(OSError):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # data: private
            with os.fdopen(fd, "w") as out:
                out.write(uuid.uuid4().hex)
            os.replace(tmp, path)
