"""Revocations reach the sockets of every process through the event hub's listener
(``gateway.revocation``): a socket joins no channel-layer group, an announcement
published on Redis closes the sockets watched under its keys, and a listener that was
away makes every socket of its process check its token again. The two-process version,
with real sockets, is ``tests/security/test_sessions_cluster.py``."""

from __future__ import annotations

import asyncio
import gc
import uuid
from typing import Any

import redis
from channels.layers import get_channel_layer

from chats.consumers import ChatConsumer
from chats.hub import RedisEventHub
from gateway import revocation


class Socket:
    """What ``gateway.revocation`` asks of a socket."""

    def __init__(self) -> None:
        self.revoked = 0
        self.rechecked = 0

    async def revoke(self) -> None:
        self.revoked += 1

    async def recheck(self) -> None:
        self.rechecked += 1


async def eventually(check: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.02)


async def listening(hub: RedisEventHub) -> None:
    hub._ensure_listener()
    await asyncio.wait_for(hub._listening.wait(), 5)


def test_a_chat_socket_has_no_channel_layer():
    assert get_channel_layer(ChatConsumer.channel_layer_alias) is None


async def test_an_announcement_on_redis_closes_the_sockets_watched_under_its_keys(
        redis_url: str, settings: Any) -> None:
    settings.REDIS_URL = redis_url
    hub = RedisEventHub(redis_url, 100)
    mine, same_user, other_user = Socket(), Socket(), Socket()
    user, other, digest = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    watched = [(mine, revocation.watch(mine, digest, user)),
               (same_user, revocation.watch(same_user, uuid.uuid4().hex, user)),
               (other_user, revocation.watch(other_user, uuid.uuid4().hex, other))]
    try:
        await listening(hub)
        # As the signals do it, from a thread (a REST view's, after its commit).
        await asyncio.to_thread(revocation._broadcast, [revocation.token_group(digest)])
        await eventually(lambda: mine.revoked == 1)
        await asyncio.to_thread(revocation._broadcast, [revocation.user_group(user)])
        await eventually(lambda: same_user.revoked == 1)
        await asyncio.sleep(0.2)  # nothing else arrives
        assert (mine.revoked, same_user.revoked, other_user.revoked) == (2, 1, 0)
    finally:
        for socket, keys in watched:
            revocation.unwatch(socket, keys)
        hub._listener.cancel()
    assert not any(key in revocation._watched for _, keys in watched for key in keys)


def test_a_socket_never_unwatched_is_not_kept() -> None:
    async def connect_that_failed_half_way() -> str:
        key = revocation.watch(Socket(), uuid.uuid4().hex, uuid.uuid4().hex)[0]
        return key

    key = asyncio.run(connect_that_failed_half_way())
    gc.collect()
    assert not revocation._watched.get(key)


async def test_a_listener_that_was_away_makes_every_socket_check_its_token(
        redis_url: str) -> None:
    hub = RedisEventHub(redis_url, 100)
    socket = Socket()
    keys = revocation.watch(socket, uuid.uuid4().hex, uuid.uuid4().hex)
    try:
        await listening(hub)
        await eventually(lambda: socket.rechecked == 1)  # the first subscription too
        redis.Redis.from_url(redis_url).client_kill_filter(_type="pubsub")
        await eventually(lambda: socket.rechecked == 2)  # subscribed again
        assert socket.revoked == 0
    finally:
        revocation.unwatch(socket, keys)
        hub._listener.cancel()
