"""The channel layers: in-memory (one process) and Redis (several), and the Redis pool.

Channels' ``InMemoryChannelLayer`` deep-copies every message for every receiving channel
and scans every channel and group for expired messages on every ``receive``: with a few
hundred sockets that scan dominates the cost of fanning out a delta. Here messages are
not copied (the gateway's messages are flat dicts of str/int that nobody mutates) and the
expiry scan runs at most once a second.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer

CLEAN_INTERVAL = 1.0


class GatewayInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cleaned_at = 0.0

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._cleaned_at < CLEAN_INTERVAL:
            return
        self._cleaned_at = now
        super()._clean_expired()


# --------------------------------------------------------------------------- Redis

def redis_pool(url: str, options: dict[str, Any] | None = None) -> Any:
    """The process's one Redis connection pool for ``url`` on the running event loop.

    A ``BlockingConnectionPool``: when every connection is busy a caller waits (up to the
    pool's timeout) instead of failing with "Too many connections", so a burst of turns
    slows down rather than losing events. The event hub (cancels, verdicts, revocations;
    its events and reads go on two connections of its own) and the channel layer draw
    from it, so ``GATEWAY_REDIS_POOL_SIZE`` bounds what one process opens in total.
    Pools are per event loop: asyncio connections cannot move between loops.
    """
    from django.conf import settings
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    loop = asyncio.get_running_loop()
    pools = _pools.setdefault(loop, {})
    pool = pools.get(url)
    if pool is None:
        # A pooled connection whose server went away (restart, failover, idle cut) is
        # reconnected and the command sent again, instead of failing its caller: redis-py
        # connections retry nothing by default.
        config = {"retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
                  **settings.GATEWAY_REDIS_POOL, **(options or {})}
        pool = pools[url] = BlockingConnectionPool.from_url(url, **config)
    return pool


_pools: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]]" = \
    weakref.WeakKeyDictionary()


class GatewayRedisChannelLayer(RedisChannelLayer):
    """channels-redis on the process's shared blocking pool (see ``redis_pool``).

    channels-redis 4.3 builds a plain ``ConnectionPool`` per host and loop, which raises
    at 100 connections; its ``create_pool`` hook is the one place to hand it ours. A host
    given as ``{"address": url, ...}`` keeps its extra options (timeouts).
    """

    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        address = host.pop("address", None)
        if address is None:  # host/port or sentinel hosts: channels-redis's own pool
            return super().create_pool(index)
        return redis_pool(address, host)

    async def close_pools(self) -> None:
        # The pool is shared with the event hub: disconnect its connections (as
        # channels-redis does on flush) but keep the pool usable.
        await self.wait_received()
        for layer in self._layers.values():
            for connection in list(layer._connections.values()):
                await connection.connection_pool.disconnect()
            layer._connections.clear()
