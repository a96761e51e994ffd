"""Per-chat event streams: ``seq`` numbering, the replay window, and fan-out.

Every event of a chat goes through ``publish``: it gets the next ``seq`` and a timestamp,
is serialised once, kept in a bounded replay window (for ``?since=``), and sent to the
chat's group, so every socket of the chat sees it. This is the streaming hot path: no
database access and no thread hop here.

``LocalEventHub`` keeps seq and the window in process memory, which is right for one
process (the embedded default); ``RedisEventHub`` keeps them in Redis for several.
Either way the sockets of this process subscribe to the hub and get events by a direct
call: the channel layer carries no events.

The hub also carries a running turn's controls (cancels, approval verdicts) from
whichever process or socket sends them to the turn's inbox (``send_control``,
``watch_control``): in process memory, or on the Redis connection that already listens
for events, so a turn costs no subscription of its own. That connection also hears of
revoked tokens and users (``gateway.revocation``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from agents import events as ev
from gateway import revocation
from gateway.redis_wire import Wire, WireError, pack

logger = logging.getLogger(__name__)

def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def encode(event_type: str, data: dict[str, Any], seq: int) -> str:
    return encode_head(event_type, data) + f"{seq}}}"


def encode_head(event_type: str, data: dict[str, Any]) -> str:
    """The envelope up to its seq, so the seq can be appended where it is assigned."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (f'{{"type":{json.dumps(event_type)},"data":{body},'
            f'"timestamp":"{now_iso()}","seq":')


def _partial_text(newest_first: Any) -> str:
    """Text of the trailing run of deltas: what the model call in progress streamed."""
    parts: list[str] = []
    for event_type, text in newest_first:
        if event_type != ev.TEXT_DELTA:
            break
        parts.append(json.loads(text)["data"]["text"])
    return "".join(reversed(parts))


@dataclass
class _Stream:
    last_seq: int
    events: deque[tuple[int, str, str]] = field(default_factory=deque)  # seq, type, json
    turn_start_seqs: deque[int] = field(default_factory=lambda: deque(maxlen=2))


@dataclass
class Replay:
    events: list[tuple[int, str]]  # (seq, encoded event) with seq > since, oldest first
    complete: bool           # False when some events after `since` are no longer kept
    last_seq: int
    partial_text: str        # streamed text of the model call in progress


class _Inboxes:
    """The running turns of this process, by chat: each gets the controls of its chat
    (``inbox.deliver(message)``, which may be called from any thread)."""

    def __init__(self) -> None:
        self._inboxes: dict[str, set[Any]] = {}

    def _add_inbox(self, chat_id: str, inbox: Any) -> None:
        self._inboxes.setdefault(chat_id, set()).add(inbox)

    def unwatch_control(self, chat_id: str, inbox: Any) -> None:
        inboxes = self._inboxes.get(chat_id)
        if inboxes is not None:
            inboxes.discard(inbox)
            if not inboxes:
                del self._inboxes[chat_id]

    def _deliver_control(self, chat_id: str, message: dict[str, Any]) -> None:
        for inbox in tuple(self._inboxes.get(chat_id, ())):
            inbox.deliver(message)


class LocalEventHub(_Inboxes):
    """seq, replay window and fan-out for one process."""

    # Sockets of this process subscribe here and get each event by a direct call: with
    # one process there is nobody else to fan out to, and the channel layer's queue,
    # receive loop and dispatch per socket and delta were the costliest part of streaming.

    def __init__(self, max_events: int, max_chats: int = 2000) -> None:
        super().__init__()
        self.max_events = max_events
        self.max_chats = max_chats
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._subscribers: dict[str, set[Any]] = {}

    def subscribe(self, chat_id: str, subscriber: Any, after: int = 0) -> None:
        """``subscriber.deliver(seq, text)`` is awaited for every later event (``after``
        matters to the Redis hub only: here nothing can fall between)."""
        self._subscribers.setdefault(chat_id, set()).add(subscriber)

    def unsubscribe(self, chat_id: str, subscriber: Any) -> None:
        subscribers = self._subscribers.get(chat_id)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[chat_id]

    def is_loaded(self, chat_id: str) -> bool:
        return chat_id in self._streams

    async def load(self, chat_id: str, last_seq: int) -> None:
        """Start numbering after ``last_seq`` (the value saved in the database) unless the
        chat's stream is already live in this process."""
        if chat_id not in self._streams:
            self._streams[chat_id] = _Stream(last_seq=last_seq)
            while len(self._streams) > self.max_chats:
                self._streams.popitem(last=False)

    async def last_seq(self, chat_id: str) -> int:
        stream = self._streams.get(chat_id)
        return stream.last_seq if stream else 0

    def known_seq(self, chat_id: str) -> int:
        stream = self._streams.get(chat_id)
        return stream.last_seq if stream else 0

    async def flush(self, chat_id: str) -> None:
        """Nothing waits here: ``publish`` delivers before it returns."""

    async def watch_control(self, chat_id: str, inbox: Any) -> None:
        """``inbox`` gets every control of the chat sent from now on."""
        self._add_inbox(chat_id, inbox)

    async def send_control(self, chat_id: str, message: dict[str, Any]) -> None:
        self._deliver_control(chat_id, message)

    async def publish(self, chat_id: str, event_type: str, data: dict[str, Any]) -> int:
        """Number, keep and fan out one event; returns its seq. The chat must be loaded."""
        stream = self._streams[chat_id]
        self._streams.move_to_end(chat_id)
        stream.last_seq += 1
        seq = stream.last_seq
        text = encode(event_type, data, seq)
        self._keep(stream, seq, event_type, text)
        for subscriber in tuple(self._subscribers.get(chat_id, ())):
            await subscriber.deliver(seq, text)
        return seq

    def _keep(self, stream: _Stream, seq: int, event_type: str, text: str) -> None:
        events = stream.events
        if event_type == ev.TURN_STARTED:
            # Keep the previous turn and this one: drop what came before the previous turn.
            if len(stream.turn_start_seqs) == 2:
                oldest = stream.turn_start_seqs[1]
                while events and events[0][0] < oldest:
                    events.popleft()
            stream.turn_start_seqs.append(seq)
        events.append((seq, event_type, text))
        if len(events) > self.max_events:
            events.popleft()

    async def replay(self, chat_id: str, since: int | None) -> Replay:
        stream = self._streams.get(chat_id)
        if stream is None:
            return Replay([], since is None, 0, "")
        events = stream.events
        partial_text = _partial_text((event_type, text) for _, event_type, text
                                     in reversed(events))
        if since is None or since >= stream.last_seq:
            return Replay([], True, stream.last_seq, partial_text)
        oldest = events[0][0] if events else stream.last_seq + 1
        complete = since + 1 >= oldest
        return Replay([(seq, text) for seq, _, text in events if seq > since], complete,
                      stream.last_seq, partial_text)


# Assigns the next seq, completes the envelope, keeps it in the replay window and
# publishes it to the chat's channel, run once per event; the events of a round go as one
# buffer (``RedisEventHub._write``). The counter never goes below ARGV[5], what
# this process last saw: after a Redis restart (counter and window lost) numbering goes
# on where the chat's sockets are instead of starting again at 1. ARGV[6] numbers the
# event among its process's (KEYS[4] keeps the last one applied for the chat): a round
# sent again after its connection broke skips the events Redis ran before the break
# (returning 0), so none is numbered and sent twice.
_PUBLISH = """
local mine = tonumber(ARGV[6])
if mine <= tonumber(redis.call('GET', KEYS[4]) or '0') then return 0 end
redis.call('SET', KEYS[4], mine, 'EX', 3600)
local seq = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[5])
if seq < floor then seq = floor end
seq = seq + 1
redis.call('SET', KEYS[1], seq, 'EX', ARGV[4])
local text = ARGV[1] .. seq .. '}'
redis.call('ZADD', KEYS[2], seq, ARGV[2] .. '|' .. text)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', KEYS[3], seq .. '|' .. text)
return seq
"""
_PUBLISH_BYTES = _PUBLISH.encode()
_PUBLISH_SHA = hashlib.sha1(_PUBLISH_BYTES).hexdigest().encode()  # Redis's name for it
_CHANNEL_PREFIX = "gw:chat:"
_CONTROL_PREFIX = "gw:ctl:"  # a chat's controls (cancel, verdicts), JSON
_CONTROL_PREFIX_BYTES = _CONTROL_PREFIX.encode()
_AUTH_CHANNEL_BYTES = revocation.AUTH_CHANNEL.encode()  # revoked tokens and users
# The listener's connection, quiet this long, is asked for a PONG, which must come
# within _PING_WAIT.
_LISTEN_IDLE = 30.0
_PING_WAIT = 10.0
# How long a turn waits at its start for the event channel to listen (its first start
# in this process only): a control sent before that would reach nobody.
_LISTEN_WAIT = 5.0
# A chat's events wait while the previous round is on the wire; past this many the
# publisher waits for the flush (memory stays bounded when Redis is slow).
_OUTBOX_LIMIT = 2000
_SEEN_LIMIT = 20000  # chats whose last seq this process remembers


class HubUnavailable(ConnectionError):
    """Redis could not take a chat's events within ``GATEWAY_REDIS_RETRY_SECONDS``."""


class _Tap:
    """One local subscriber of a Redis-backed chat: events in seq order, each once.

    Until it has caught up with the replay window (after it subscribed, or after the
    connection to Redis came back) events from the channel are held, so a late one can
    never overtake an earlier one.
    """

    def __init__(self, subscriber: Any, after: int) -> None:
        self.subscriber = subscriber
        self.last = after
        self.live = False
        self.held: list[tuple[int, str]] = []

    async def offer(self, seq: int, text: str) -> None:
        if self.live:
            await self._send(seq, text)
        else:
            self.held.append((seq, text))

    async def catch_up(self, events: list[tuple[int, str]]) -> None:
        for seq, text in events:
            await self._send(seq, text)
        while self.held:
            held, self.held = sorted(self.held), []
            for seq, text in held:
                await self._send(seq, text)
        self.live = True  # no await since the last look at `held`

    async def _send(self, seq: int, text: str) -> None:
        if seq <= self.last:
            return
        self.last = seq
        await self.subscriber.deliver(seq, text)


class RedisEventHub(_Inboxes):
    """seq, the replay window and fan-out in Redis, shared by every server process.

    Keys: ``gw:chat:<id>:seq`` (the counter, seeded from the database) and
    ``gw:chat:<id>:events`` (a sorted set scored by seq, members ``<type>|<json>``).
    Fan-out: each event is published on the channel ``gw:chat:<id>`` by the same script
    that numbers it; every process listens to ``gw:chat:*`` on one connection and hands
    events to its own sockets by a direct call, in the order Redis numbered them. Controls
    go on ``gw:ctl:<id>``, read on the same connection, to the chat's running turn.

    ``publish`` does not wait for Redis: events queue while the previous round is on the
    wire and go out together once per round (every chat's, each chat's in order), so a
    streaming turn never waits a round trip per delta. A write that fails is retried
    (reconnecting) for ``GATEWAY_REDIS_RETRY_SECONDS``; after that the chat's next
    ``publish`` or ``flush`` raises ``HubUnavailable`` and the turn ends.

    The writer and the listener each have a connection of their own, outside the pool,
    spoken to through hiredis directly (``gateway.redis_wire``): the two paths every
    event takes cost about 1 us of Python each that way, 30 us through redis-py. A
    socket's reads (the chat's counter seeded, the replay window, the catch-up) ride the
    writer's rounds too (``_ask``): one opening socket cost three redis-py calls before.
    """

    TTL = 7 * 24 * 3600  # an idle chat's stream is forgotten after a week

    def __init__(self, url: str, max_events: int, retry_seconds: float = 15.0) -> None:
        super().__init__()
        self.url = url
        self.max_events = max_events
        self.retry_seconds = retry_seconds
        self._loaded: set[str] = set()
        self._seen: OrderedDict[str, int] = OrderedDict()
        # chat -> (head, type, number among this process's events: see _PUBLISH)
        self._queued: dict[str, list[tuple[str, str, int]]] = {}
        self._publisher = uuid.uuid4().hex[:16]
        self._numbers = itertools.count(1)
        self._asked: list[tuple[list[bytes], asyncio.Future[list[Any]]]] = []  # reads
        self._in_flight: set[str] = set()
        self._writer: asyncio.Task[None] | None = None
        self._round_done = asyncio.Event()
        self._failed: dict[str, BaseException] = {}
        self._taps: dict[str, dict[Any, _Tap]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writer_wire = Wire(url, name="gw-hub-writer")  # its own (``_write``)

    def _redis(self) -> Any:
        import redis.asyncio as aioredis

        from gateway.layers import redis_pool

        return aioredis.Redis(connection_pool=redis_pool(self.url))

    @staticmethod
    def _keys(chat_id: str) -> tuple[str, str, str]:
        return (f"{_CHANNEL_PREFIX}{chat_id}:seq", f"{_CHANNEL_PREFIX}{chat_id}:events",
                f"{_CHANNEL_PREFIX}{chat_id}")

    def _saw(self, chat_id: str, seq: int) -> None:
        if seq > self._seen.get(chat_id, 0):
            self._seen[chat_id] = seq
            self._seen.move_to_end(chat_id)
            while len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)

    def known_seq(self, chat_id: str) -> int:
        """The highest seq of the chat this process has seen (no Redis call)."""
        return self._seen.get(chat_id, 0)

    def is_loaded(self, chat_id: str) -> bool:
        return chat_id in self._loaded

    async def load(self, chat_id: str, last_seq: int) -> None:
        self._saw(chat_id, last_seq)
        await self._ask((b"SET", self._keys(chat_id)[0], last_seq, b"NX", b"EX", self.TTL))
        self._loaded.add(chat_id)

    async def last_seq(self, chat_id: str) -> int:
        await self.flush(chat_id)
        value = int(await self._redis().get(self._keys(chat_id)[0]) or 0)
        self._saw(chat_id, value)
        return value

    # -- publishing ----------------------------------------------------------------------
    async def publish(self, chat_id: str, event_type: str, data: dict[str, Any]) -> None:
        """Queue one event of the chat for Redis, behind the chat's earlier ones."""
        self._raise_failure(chat_id)
        queued = self._queued.setdefault(chat_id, [])
        queued.append((encode_head(event_type, data), event_type, next(self._numbers)))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_rounds())
        if len(queued) > _OUTBOX_LIMIT:
            await self.flush(chat_id)

    async def _ask(self, *commands: tuple[Any, ...]) -> list[Any]:
        """The replies of these reads, sent in the writer's next round after the events
        queued before them (so they see those), parsed by hiredis: a socket's
        catch-up costs no redis-py call and no round trip of its own. An error reply
        raises ``HubUnavailable``; so does a round that could not be written."""
        future = asyncio.get_running_loop().create_future()
        self._asked.append(([pack(*command) for command in commands], future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_rounds())
        replies = await future
        for reply in replies:
            if isinstance(reply, Exception):
                raise HubUnavailable(f"Redis refused a read: {reply}")
        return replies

    async def flush(self, chat_id: str) -> None:
        """Wait until the chat's queued events are in Redis; raises ``HubUnavailable``
        when they could not be written."""
        while chat_id in self._queued or chat_id in self._in_flight:
            done = self._round_done
            await done.wait()
        self._raise_failure(chat_id)

    def _raise_failure(self, chat_id: str) -> None:
        failure = self._failed.pop(chat_id, None)
        if failure is not None:
            raise HubUnavailable(f"Redis did not take the chat's events: {failure}") \
                from failure

    async def _write_rounds(self) -> None:
        """One writer per process: each round sends every chat's queued events as one
        buffer (in order per chat), so publishing costs one connection and one round
        trip per round, however many chats stream."""
        try:
            while self._queued or self._asked:
                batch, self._queued = self._queued, {}
                asked, self._asked = self._asked, []
                self._in_flight = set(batch)
                try:
                    await self._write(batch, asked)
                except Exception as exc:  # noqa: BLE001 - handed to each chat's next call
                    for chat_id in batch:
                        self._failed[chat_id] = exc
                    for _, future in asked:
                        if not future.done():
                            future.set_exception(exc)
                finally:
                    self._in_flight = set()
                    done, self._round_done = self._round_done, asyncio.Event()
                    done.set()
        finally:
            self._writer = None

    async def _write(self, batch: dict[str, list[tuple[str, str, int]]],
                     asked: list[tuple[list[bytes], asyncio.Future[list[Any]]]]) -> None:
        """The round's events as one buffer on the writer's own connection
        (``gateway.redis_wire``): EVAL of the numbering script for the first, EVALSHA
        for the rest (the first loaded it, so none of them can miss it); then the reads
        asked for meanwhile (``_ask``), each answered with its replies."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.05
        commands: list[bytes] = []
        for chat_id, events in batch.items():
            keys, floor = self._keys(chat_id), self.known_seq(chat_id)
            applied = f"{keys[2]}:pub:{self._publisher}"
            for head, event_type, number in events:
                script = (b"EVAL", _PUBLISH_BYTES) if not commands else (b"EVALSHA",
                                                                         _PUBLISH_SHA)
                commands.append(pack(*script, b"4", *keys, applied, head, event_type,
                                     self.max_events, self.TTL, floor, number))
        numbered = len(commands)
        for packed, _ in asked:
            commands.extend(packed)
        data = b"".join(commands)
        while True:
            try:
                wire = self._writer_wire
                if not wire.is_open:
                    await wire.open()
                replies = await wire.request(data, len(commands))
                break
            except WireError:
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning("Redis write of %d chat(s) failed; retrying", len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        rest = replies[numbered:]
        for packed, future in asked:
            mine, rest = rest[:len(packed)], rest[len(packed):]
            if not future.done():  # its asker may be gone (a socket closed)
                future.set_result(mine)
        seqs = iter(replies[:numbered])
        for chat_id, events in batch.items():
            for _ in events:
                seq = next(seqs)
                if isinstance(seq, Exception):  # an error reply: this round failed
                    raise HubUnavailable(f"Redis refused an event: {seq}")
                self._saw(chat_id, seq)

    # -- controls ------------------------------------------------------------------------
    async def watch_control(self, chat_id: str, inbox: Any) -> None:
        """``inbox`` gets every control of the chat sent, by any process, once this
        process listens (waited for, bounded, at the first turn of a process)."""
        self._add_inbox(chat_id, inbox)
        self._ensure_listener()
        if not self._listening.is_set():
            try:
                async with asyncio.timeout(_LISTEN_WAIT):  # wait_for can swallow a cancel
                    await self._listening.wait()
            except TimeoutError:
                logger.warning("the Redis event channel is not listening yet: a cancel "
                               "of chat %s sent now would be missed", chat_id)

    async def send_control(self, chat_id: str, message: dict[str, Any]) -> None:
        """To the chat's running turn, in whatever process (this one included: it gets
        its own publication, so a control is delivered once, the same way everywhere)."""
        await self._redis().publish(f"{_CONTROL_PREFIX}{chat_id}", json.dumps(message))

    # -- local subscribers ---------------------------------------------------------------
    def subscribe(self, chat_id: str, subscriber: Any, after: int = 0) -> None:
        """``subscriber.deliver(seq, text)`` is awaited for every event after ``after``
        (the last seq it got from ``replay``), in order, each once."""
        tap = _Tap(subscriber, after)
        self._taps.setdefault(chat_id, {})[subscriber] = tap
        self._ensure_listener()
        if self._listening.is_set():
            self._spawn(self._catch_up(chat_id, tap))

    def unsubscribe(self, chat_id: str, subscriber: Any) -> None:
        taps = self._taps.get(chat_id)
        if taps is not None:
            taps.pop(subscriber, None)
            if not taps:
                del self._taps[chat_id]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen())

    async def _catch_up(self, chat_id: str, tap: _Tap) -> None:
        """Deliver what the tap missed from the replay window, then go live (retried
        while the tap is subscribed and the listener connected: until then its events
        wait in ``held``)."""
        delay = 0.1
        while self._taps.get(chat_id, {}).get(tap.subscriber) is tap and \
                self._listening.is_set():
            try:
                events = await self._events_after(chat_id, tap.last)
            except Exception as exc:  # noqa: BLE001 - Redis busy or away: try again
                logger.warning("catch-up of a socket of chat %s failed: %r", chat_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            await tap.catch_up(events)
            return

    async def _listen(self) -> None:
        """Read every chat's events from ``gw:chat:*`` and hand them to local taps;
        after a lost connection, subscribe again and let every tap catch up. The
        connection is the listener's own (``gateway.redis_wire``): quiet for
        ``_LISTEN_IDLE`` seconds, it is asked for a PONG, and one that does not answer
        is replaced (a connection cut without a word would otherwise hang here)."""
        delay = 0.1
        while True:
            wire = Wire(self.url, timeout=_LISTEN_IDLE, name="gw-hub-listener")
            try:
                await wire.open()
                patterns = (f"{_CHANNEL_PREFIX}*", f"{_CONTROL_PREFIX}*",
                            revocation.AUTH_CHANNEL)
                wire.send(pack(b"PSUBSCRIBE", *patterns))
                confirmed = 0
                while confirmed < len(patterns):  # from here on nothing is missed
                    for message in await wire.read(timeout=_LISTEN_WAIT):
                        confirmed += message[0] == b"psubscribe"
                self._listening.set()
                delay = 0.1
                revocation.recheck()  # an announcement may have come while nobody listened
                for chat_id, taps in list(self._taps.items()):
                    for tap in list(taps.values()):
                        self._spawn(self._catch_up(chat_id, tap))
                pinged = False
                while True:
                    messages = await wire.read(_PING_WAIT if pinged else _LISTEN_IDLE,
                                               quiet_ok=True)
                    if not messages:  # quiet: is the connection still there?
                        if pinged:
                            raise WireError("Redis did not answer a PING")
                        wire.send(pack(b"PING"))
                        pinged = True
                        continue
                    pinged = False
                    for message in messages:
                        if message[0] != b"pmessage":
                            continue  # a PONG
                        channel = message[2]
                        if channel == _AUTH_CHANNEL_BYTES:
                            revocation.deliver(json.loads(message[3]))
                        elif channel.startswith(_CONTROL_PREFIX_BYTES):
                            self._deliver_control(channel[len(_CONTROL_PREFIX_BYTES):]
                                                  .decode(), json.loads(message[3]))
                        else:
                            await self._dispatch(channel, message[3])
            except asyncio.CancelledError:
                raise
            except WireError as exc:  # Redis went away: hold events, reconnect
                logger.warning("lost the Redis event channel (%s); reconnecting", exc)
            except Exception:  # noqa: BLE001 - a bug: logged, and the channel goes on
                logger.exception("the Redis event channel failed; reconnecting")
            finally:
                self._listening.clear()
                for taps in self._taps.values():
                    for tap in taps.values():
                        tap.live = False
                wire.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _dispatch(self, channel: bytes, data: bytes) -> None:
        chat_id = channel.decode()[len(_CHANNEL_PREFIX):]
        head, text = data.decode().split("|", 1)
        seq = int(head)
        self._saw(chat_id, seq)
        for tap in tuple(self._taps.get(chat_id, {}).values()):
            await tap.offer(seq, text)

    # -- replay --------------------------------------------------------------------------
    @staticmethod
    def _after(key: str, since: int) -> tuple[Any, ...]:
        return (b"ZRANGEBYSCORE", key, since + 1, b"+inf", b"WITHSCORES")

    @staticmethod
    def _events(flat: list[bytes], upto: int | None = None) -> list[tuple[int, str]]:
        """``ZRANGEBYSCORE ... WITHSCORES`` (member, score, member, score...) as
        (seq, encoded event) pairs, oldest first, those after ``upto`` left out."""
        out = []
        for member, score in zip(flat[::2], flat[1::2]):
            seq = int(float(score))
            if upto is None or seq <= upto:
                out.append((seq, member.decode().split("|", 1)[1]))
        return out

    async def _events_after(self, chat_id: str, since: int) -> list[tuple[int, str]]:
        [flat] = await self._ask(self._after(self._keys(chat_id)[1], since))
        return self._events(flat)

    async def replay(self, chat_id: str, since: int | None) -> Replay:
        """The window after ``since`` and the streamed text of the call in progress, in
        one round trip (after the events this process queued for the chat: the same
        round carries them first)."""
        seq_key, events_key, _ = self._keys(chat_id)
        reads: list[tuple[Any, ...]] = [(b"GET", seq_key),
                                        (b"ZREVRANGE", events_key, 0, 2000)]
        if since is not None:
            reads.append(self._after(events_key, since))
        raw_last, tail, *found = await self._ask(*reads)
        last = int(raw_last or 0)
        self._saw(chat_id, last)
        pairs = [m.decode().split("|", 1) for m in tail]
        partial_text = _partial_text((kind, text) for kind, text in pairs)
        if since is None or since >= last:
            return Replay([], True, last, partial_text)
        texts = self._events(found[0], upto=last)
        oldest = texts[0][0] if texts else last + 1
        return Replay(texts, since + 1 >= oldest, last, partial_text)


def make_hub(redis_url: str, max_events: int, retry_seconds: float = 15.0
             ) -> LocalEventHub | RedisEventHub:
    """Redis when several processes share chats, process memory otherwise."""
    if redis_url:
        return RedisEventHub(redis_url, max_events, retry_seconds)
    return LocalEventHub(max_events)
