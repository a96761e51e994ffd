"""The event hub's own Redis connections (``gateway.redis_wire``): every event of every
chat arrives once and in order on another process, through a flushed script cache, a
killed writer connection, a killed or silent listener connection; and the threads' own
connection for the shared versions survives a restart of Redis."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid

import pytest
import redis

from chats import hub as hub_module
from chats.hub import RedisEventHub
from gateway.redis_wire import SyncWire, WireError, client_name, pack


class Tap:
    """A socket of the reading process: every event it is handed, in order."""

    def __init__(self) -> None:
        self.got: list[tuple[int, str]] = []

    async def deliver(self, seq: int, text: str) -> None:
        self.got.append((seq, text))


async def eventually(check, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not within the time")
        await asyncio.sleep(0.02)


def texts(tap: Tap) -> list[str]:
    import json

    return [json.loads(text)["data"]["text"] for _, text in tap.got]


async def listening(hub: RedisEventHub, chat_id: str, tap: Tap) -> None:
    hub.subscribe(chat_id, tap, after=0)
    await asyncio.wait_for(hub._listening.wait(), 5)


def stop(*hubs: RedisEventHub) -> None:
    for hub in hubs:
        if hub._listener:
            hub._listener.cancel()
        hub._writer_wire.close()


def test_a_threads_name_becomes_a_name_redis_takes():
    assert client_name("gw-versions-Thread-5 (<lambda>)") == "gw-versions-Thread-5-lambda"
    assert client_name("gw-versions-gateway-db_0") == "gw-versions-gateway-db_0"


def test_a_command_is_packed_as_resp():
    assert pack(b"GET", "k\u00e9y", 12) == b"*3\r\n$3\r\nGET\r\n$4\r\nk\xc3\xa9y\r\n$2\r\n12\r\n"


async def test_many_chats_events_arrive_once_and_in_order_on_another_process(redis_url):
    writer, reader = RedisEventHub(redis_url, 1000), RedisEventHub(redis_url, 1000)
    chats = [str(uuid.uuid4()) for _ in range(20)]
    taps = {chat_id: Tap() for chat_id in chats}
    for chat_id in chats:
        await listening(reader, chat_id, taps[chat_id])
        await writer.load(chat_id, 0)
    try:
        for n in range(50):  # interleaved, many rounds, texts with the separator in them
            for chat_id in chats:
                await writer.publish(chat_id, "agent.text_delta", {"text": f"{n}|é"})
            if n % 7 == 0:
                await asyncio.sleep(0)
        for chat_id in chats:
            await writer.flush(chat_id)
        await eventually(lambda: all(len(t.got) == 50 for t in taps.values()))
        for chat_id, tap in taps.items():
            assert [seq for seq, _ in tap.got] == list(range(1, 51))
            assert texts(tap) == [f"{n}|é" for n in range(50)]
            replay = await reader.replay(chat_id, 0)
            assert replay.events == tap.got and replay.complete
    finally:
        stop(writer, reader)


async def test_a_flushed_script_cache_loses_no_event(redis_url):
    writer, reader = RedisEventHub(redis_url, 100), RedisEventHub(redis_url, 100)
    chat_id, tap = str(uuid.uuid4()), Tap()
    await listening(reader, chat_id, tap)
    admin = redis.Redis.from_url(redis_url)
    try:
        await writer.publish(chat_id, "agent.text_delta", {"text": "a"})
        await writer.flush(chat_id)
        admin.script_flush()  # as after a Redis restart: the script is unknown again
        for text in ("b", "c"):
            await writer.publish(chat_id, "agent.text_delta", {"text": text})
        await writer.flush(chat_id)
        await eventually(lambda: len(tap.got) == 3)
        assert texts(tap) == ["a", "b", "c"] and [s for s, _ in tap.got] == [1, 2, 3]
    finally:
        stop(writer, reader)


async def test_a_read_sees_the_events_queued_before_it_and_shares_their_round(
        redis_url, monkeypatch):
    hub = RedisEventHub(redis_url, 100)
    chat_id = str(uuid.uuid4())
    rounds: list[int] = []
    request = hub._writer_wire.request

    async def counted(data: bytes, count: int) -> list:
        rounds.append(count)
        return await request(data, count)

    monkeypatch.setattr(hub._writer_wire, "request", counted)
    try:
        await hub.load(chat_id, 7)  # seeded from the database: numbering goes on at 8
        assert rounds == [1]
        for text in ("a", "b"):  # queued, not written: the replay below carries them
            await hub.publish(chat_id, "agent.text_delta", {"text": text})
        replay = await hub.replay(chat_id, 7)
        assert rounds == [1, 2 + 3]  # two events and three reads in one round trip
        assert [seq for seq, _ in replay.events] == [8, 9] and replay.last_seq == 9
        assert replay.complete and replay.partial_text == "ab"
        assert await hub._events_after(chat_id, 8) == replay.events[1:]
        await hub.load(chat_id, 0)  # SET NX: a seeded counter is never set back
        assert (await hub.replay(chat_id, None)).last_seq == 9
    finally:
        stop(hub)


async def test_a_refused_read_is_an_error_of_that_read_alone(redis_url):
    hub = RedisEventHub(redis_url, 100)
    chat_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    admin = redis.Redis.from_url(redis_url)
    admin.set(hub._keys(chat_id)[1], "not a sorted set")
    try:
        await hub.publish(other, "agent.text_delta", {"text": "x"})
        with pytest.raises(hub_module.HubUnavailable, match="refused a read"):
            await hub.replay(chat_id, 0)
        await hub.flush(other)  # the event of the same round was written
        assert (await hub.replay(other, 0)).partial_text == "x"
    finally:
        admin.delete(hub._keys(chat_id)[1])
        stop(hub)


async def test_a_killed_writer_connection_is_replaced(redis_url, caplog):
    writer, reader = RedisEventHub(redis_url, 100), RedisEventHub(redis_url, 100)
    chat_id, tap = str(uuid.uuid4()), Tap()
    await listening(reader, chat_id, tap)
    admin = redis.Redis.from_url(redis_url)
    try:
        await writer.publish(chat_id, "agent.text_delta", {"text": "before"})
        await writer.flush(chat_id)
        admin.client_kill_filter(_type="normal")  # every normal client but this one
        await writer.publish(chat_id, "agent.text_delta", {"text": "after"})
        await writer.flush(chat_id)  # written, on a new connection
        await eventually(lambda: len(tap.got) == 2)
        assert texts(tap) == ["before", "after"] and [s for s, _ in tap.got] == [1, 2]
    finally:
        stop(writer, reader)


async def test_a_round_sent_again_after_a_cut_numbers_and_sends_each_event_once(
        redis_url, caplog):
    """The connection breaks after Redis ran the round's commands and before their
    replies came: the round is sent again, and the events Redis ran already are
    skipped, not numbered and published a second time."""
    writer, reader = RedisEventHub(redis_url, 100), RedisEventHub(redis_url, 100)
    chat_id, other, tap, other_tap = str(uuid.uuid4()), str(uuid.uuid4()), Tap(), Tap()
    await listening(reader, chat_id, tap)
    reader.subscribe(other, other_tap)
    wire = writer._writer_wire
    request, cuts = wire.request, []

    async def cut_after_sending(data: bytes, count: int) -> list:
        if not cuts and count >= 3:  # the round of three events, the first time
            cuts.append(count)
            wire._writer.write(data)
            await wire._writer.drain()
            await asyncio.sleep(0.3)  # Redis has run them
            wire.close()
            raise WireError("cut before the replies")
        return await request(data, count)

    wire.request = cut_after_sending
    try:
        await writer.publish(chat_id, "agent.text_delta", {"text": "before"})
        await writer.flush(chat_id)
        with caplog.at_level(logging.WARNING, "chats.hub"):
            for text in ("a", "b"):
                await writer.publish(chat_id, "agent.text_delta", {"text": text})
            await writer.publish(other, "agent.text_delta", {"text": "x"})
            await writer.flush(chat_id)
        assert cuts and "retrying" in caplog.text
        await writer.publish(chat_id, "agent.text_delta", {"text": "after"})
        await writer.flush(chat_id)
        await eventually(lambda: len(tap.got) >= 4 and other_tap.got)
        await asyncio.sleep(0.2)  # nothing more comes
        assert texts(tap) == ["before", "a", "b", "after"]
        assert [seq for seq, _ in tap.got] == [1, 2, 3, 4]
        assert texts(other_tap) == ["x"]
        assert (await writer.replay(chat_id, 0)).events == tap.got
    finally:
        stop(writer, reader)


async def test_a_killed_listener_reconnects_and_its_sockets_catch_up(redis_url, caplog):
    writer, reader = RedisEventHub(redis_url, 100), RedisEventHub(redis_url, 100)
    chat_id, tap = str(uuid.uuid4()), Tap()
    await listening(reader, chat_id, tap)
    admin = redis.Redis.from_url(redis_url)
    try:
        await writer.publish(chat_id, "agent.text_delta", {"text": "one"})
        await writer.flush(chat_id)
        await eventually(lambda: len(tap.got) == 1)
        with caplog.at_level(logging.WARNING, "chats.hub"):
            admin.client_kill_filter(_type="pubsub")
            for text in ("two", "three"):  # while the listener is away, or after
                await writer.publish(chat_id, "agent.text_delta", {"text": text})
            await writer.flush(chat_id)
            await eventually(lambda: len(tap.got) == 3)
        assert texts(tap) == ["one", "two", "three"]
        assert "lost the Redis event channel" in caplog.text
    finally:
        stop(writer, reader)


class FreezingProxy:
    """A TCP proxy to Redis whose pub/sub connections can be made to go silent (a peer
    gone without a word: no FIN, no RST); other connections, and later ones, pass."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.silent: set[asyncio.StreamWriter] = set()
        self.subscribers: set[asyncio.StreamWriter] = set()
        self.open: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        self.silent = set(self.subscribers)

    async def _handle(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.open |= {writer, up_writer}

        async def pipe(src, dst, upward: bool) -> None:
            while data := await src.read(65536):
                if upward and b"PSUBSCRIBE" in data:
                    self.subscribers.add(writer)
                if writer not in self.silent:
                    dst.write(data)

        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    def close(self) -> None:
        self.server.close()
        for writer in self.open:
            writer.close()


async def test_a_silent_listener_connection_is_replaced(redis_url, monkeypatch, caplog):
    monkeypatch.setattr(hub_module, "_LISTEN_IDLE", 0.3)
    monkeypatch.setattr(hub_module, "_PING_WAIT", 0.3)
    host_port, db = redis_url.rsplit("/", 1)
    proxy = FreezingProxy(int(host_port.rsplit(":", 1)[1]))
    proxied = f"redis://127.0.0.1:{await proxy.start()}/{db}"
    writer, reader = RedisEventHub(redis_url, 100), RedisEventHub(proxied, 100)
    chat_id, tap = str(uuid.uuid4()), Tap()
    await listening(reader, chat_id, tap)
    try:
        await writer.publish(chat_id, "agent.text_delta", {"text": "one"})
        await writer.flush(chat_id)
        await eventually(lambda: len(tap.got) == 1)
        with caplog.at_level(logging.WARNING, "chats.hub"):
            proxy.freeze()  # the listener's connection says nothing from now on
            await writer.publish(chat_id, "agent.text_delta", {"text": "two"})
            await writer.flush(chat_id)
            await eventually(lambda: len(tap.got) == 2, timeout=10)
        assert texts(tap) == ["one", "two"]
        assert "did not answer a PING" in caplog.text
    finally:
        stop(writer, reader)
        proxy.close()


def test_a_threads_connection_survives_a_restart_of_redis(own_redis):
    pool = redis.ConnectionPool.from_url(own_redis.url)
    wire = SyncWire(pool)
    redis.Redis(connection_pool=pool).set("k", b"v1")
    assert wire.command(b"GET", b"k") == b"v1"
    own_redis.restart()  # the kept connection is dead; the command goes on a new one
    assert wire.command(b"GET", b"k") is None  # nothing was saved
    assert wire.command(b"SET", b"k", b"v2") == b"OK"
    own_redis.stop()
    with pytest.raises(WireError):
        wire.command(b"GET", b"k")
    own_redis.start()
    assert wire.command(b"GET", b"k") is None
    wire.close()


def test_a_bump_is_seen_at_once_by_every_thread_through_their_own_connections(
        redis_url, settings):
    from django.core.cache import cache

    from gateway.shared_version import SharedVersion

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": redis_url}}
    settings.REDIS_URL = redis_url
    version = SharedVersion(f"test:version:{uuid.uuid4().hex}", "unused")
    first = version.current()
    seen: list[str] = []
    other = threading.Thread(target=lambda: seen.append(version.current()))
    other.start()
    other.join()
    assert seen == [first]  # the same version, read on the other thread's connection
    version._new()  # a change, made here
    other = threading.Thread(target=lambda: seen.append(version.current()))
    other.start()
    other.join()
    assert seen[-1] != first and seen[-1] == version.current()
    cache.delete(version.key)
