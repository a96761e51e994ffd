"""The process's Redis pool: one per URL, parsing replies in C."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis._parsers.hiredis import _AsyncHiredisParser

from gateway.layers import redis_pool


async def test_the_pool_is_shared_and_parses_replies_with_hiredis(redis_url):
    """hiredis is pinned in the requirements: every event of a chat in team mode is a
    reply to parse (the publish script's seq) and a message to parse (the fan-out), and
    redis-py's pure-Python parser cost a third more CPU per event."""
    pool = redis_pool(redis_url)
    assert pool is redis_pool(redis_url)  # one pool per URL and loop
    client = aioredis.Redis(connection_pool=pool)
    assert await client.ping()
    connection = await pool.get_connection()
    try:
        assert isinstance(connection._parser, _AsyncHiredisParser)
    finally:
        await pool.release(connection)
    await client.aclose()
