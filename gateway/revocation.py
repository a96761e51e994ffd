"""Revocation that reaches open sockets, on every server process.

A socket authenticates once, at its handshake; REST checks the token at every request.
So that revoking a token (``DELETE /api/tokens/<id>``, the admin, its expiry) or
deactivating or deleting a user also ends what that token or user has open, every socket
is watched here under two keys (``token_group``, ``user_group``), and the signals here
announce the keys once the change is committed; each socket watched under one of them
closes with 4001.

Embedded, the announcement is handed to this process's sockets directly. With Redis
(several processes) it is published on ``AUTH_CHANNEL``, which the event hub's listener
of every process reads (``chats.hub.RedisEventHub``) and hands here. A socket costs no
Redis call of its own: a channel-layer group per key cost four (join and leave, about
650 us of Python a socket). A listener that was away (Redis restarted) may have missed an
announcement: when it listens again every socket of its process checks its token anew
(``recheck``); every frame a socket sends is checked anyway.

``revoked`` is sent as well, for anything that keeps tokens it checked (a cache in front
of ``gateway.auth.lookup_token``): arguments ``digests`` (the tokens' digests, may be
empty) and ``user_id`` (None when only tokens went).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import weakref
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from gateway.models import ApiToken

logger = logging.getLogger(__name__)

AUTH_CHANNEL = "gw:auth"  # Redis pub/sub: a JSON list of keys whose sockets close
revoked = Signal()

# key -> {socket: its event loop}; a socket has ``async revoke()`` and ``async recheck()``.
# Weak: a socket whose connect failed half-way is never unwatched, and must not be kept.
_watched: dict[str, "weakref.WeakKeyDictionary[Any, asyncio.AbstractEventLoop]"] = {}
_closing: set[asyncio.Future[Any]] = set()


def token_group(digest: str) -> str:
    """The key of every socket opened with the token whose digest this is (a short
    hash of it)."""
    return "auth-token." + hashlib.sha256(digest.encode()).hexdigest()[:40]


def user_group(user_id: Any) -> str:
    return f"auth-user.{user_id}"


def watch(socket: Any, digest: str, user_id: Any) -> list[str]:
    """Watch ``socket`` (on the running event loop) under its token's and user's keys;
    returns the keys, for ``unwatch``."""
    loop = asyncio.get_running_loop()
    keys = [token_group(digest), user_group(user_id)]
    for key in keys:
        _watched.setdefault(key, weakref.WeakKeyDictionary())[socket] = loop
    return keys


def unwatch(socket: Any, keys: list[str]) -> None:
    for key in keys:
        sockets = _watched.get(key)
        if sockets is not None:
            sockets.pop(socket, None)
            if not sockets:
                del _watched[key]


def deliver(keys: list[str], action: str = "revoke") -> None:
    """Every socket of this process watched under one of ``keys`` closes with 4001
    (``action`` "revoke"), from any thread, each on its own event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, set[Any]] = {}
    for key in keys:
        for socket, loop in tuple(_watched.get(key, {}).items()):
            by_loop.setdefault(loop, set()).add(socket)
    for loop, sockets in by_loop.items():
        if not loop.is_closed():
            loop.call_soon_threadsafe(_act, sockets, action)


def recheck() -> None:
    """Every socket of this process checks its token again (after the Redis listener
    was away: an announcement may have been missed)."""
    deliver(list(_watched), "recheck")


def _act(sockets: set[Any], action: str) -> None:
    for socket in sockets:
        task = asyncio.ensure_future(getattr(socket, action)())
        _closing.add(task)
        task.add_done_callback(_done)


def _done(task: asyncio.Future[Any]) -> None:
    _closing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("a socket could not act on a revocation: %r", task.exception())


async def _publish(keys: list[str]) -> None:
    import redis.asyncio as aioredis

    from gateway.layers import redis_pool

    client = aioredis.Redis(connection_pool=redis_pool(settings.REDIS_URL))
    await client.publish(AUTH_CHANNEL, json.dumps(keys))


def _broadcast(keys: list[str]) -> None:
    if not settings.REDIS_URL:
        deliver(keys)
        return
    try:  # every process's listener hands it to its sockets, this one's included
        async_to_sync(_publish)(keys)
    except Exception:  # noqa: BLE001 - the revocation itself stands; REST refuses it
        logger.exception("could not tell the sockets of %s that they were revoked", keys)


def announce(digests: list[str], user_id: Any = None) -> None:
    """After the current transaction commits: tell caches and open sockets."""
    keys = [token_group(d) for d in digests]
    if user_id is not None:
        keys.append(user_group(user_id))

    def send() -> None:
        revoked.send(sender=ApiToken, digests=list(digests), user_id=user_id)
        _broadcast(keys)

    transaction.on_commit(send)


@receiver(post_delete, sender=ApiToken, dispatch_uid="gateway.revocation.token")
def _token_deleted(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    # Revoked by its owner or an admin, expired and swept, or its user deleted (cascade).
    announce([instance.digest])


@receiver(post_save, dispatch_uid="gateway.revocation.user_saved")
def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if sender is get_user_model() and not created and not instance.is_active:
        announce([], instance.pk)


@receiver(post_delete, dispatch_uid="gateway.revocation.user_deleted")
def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    if sender is get_user_model():
        announce([], instance.pk)
