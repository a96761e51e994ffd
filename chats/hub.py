"""Per-chat event streams: ``seq`` numbering, the replay window, and fan-out.

Every event of a chat goes through ``publish``: it gets the next ``seq`` and a timestamp,
is serialised once, kept in a bounded replay window (for ``?since=``), and sent to the
chat's group, so every socket of the chat sees it. This is the streaming hot path: no
database access and no thread hop here.

``LocalEventHub`` keeps seq and the window in process memory, which is right for one
process (the embedded default); ``RedisEventHub`` keeps them in Redis for several.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer

from agents import events as ev


def group_name(chat_id: str) -> str:
    return f"chat.{chat_id}"


def control_group(chat_id: str) -> str:
    """The group a running turn listens on for cancels and verdicts."""
    return f"turnctl.{chat_id}"


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


async def fan_out(chat_id: str, seq: int, text: str) -> None:
    await get_channel_layer().group_send(group_name(chat_id),
                                         {"type": "chat.event", "seq": seq, "text": text})


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


class LocalEventHub:
    """seq, replay window and fan-out for one process."""

    # Sockets of this process subscribe here and get each event by a direct call: with
    # one process there is nobody else to fan out to, and the channel layer's queue,
    # receive loop and dispatch per socket and delta are the costliest part of streaming.
    local_delivery = True

    def __init__(self, max_events: int, max_chats: int = 2000) -> None:
        self.max_events = max_events
        self.max_chats = max_chats
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._subscribers: dict[str, set[Any]] = {}

    def subscribe(self, chat_id: str, subscriber: Any) -> None:
        """``subscriber.deliver(seq, text)`` is awaited for every later event."""
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


# Assigns the next seq, completes the envelope and keeps it in the replay window, in one
# round trip, so two processes can never hand out the same seq.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
local text = ARGV[1] .. seq .. '}'
redis.call('ZADD', KEYS[2], seq, ARGV[2] .. '|' .. text)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {seq, text}
"""


class RedisEventHub:
    """seq and the replay window in Redis, shared by every server process.

    Keys: ``gw:chat:<id>:seq`` (the counter, seeded from the database) and
    ``gw:chat:<id>:events`` (a sorted set scored by seq, members ``<type>|<json>``).
    Fan-out goes through the channel layer, which is channels-redis in this mode.
    """

    TTL = 7 * 24 * 3600  # an idle chat's stream is forgotten after a week
    local_delivery = False  # sockets get events through the channel layer's groups

    def __init__(self, url: str, max_events: int) -> None:
        self.url = url
        self.max_events = max_events
        self._loaded: set[str] = set()
        self._clients: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()

    def _redis(self) -> Any:
        import redis.asyncio as aioredis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = aioredis.from_url(self.url)
        return client

    @staticmethod
    def _keys(chat_id: str) -> tuple[str, str]:
        return f"gw:chat:{chat_id}:seq", f"gw:chat:{chat_id}:events"

    def is_loaded(self, chat_id: str) -> bool:
        return chat_id in self._loaded

    async def load(self, chat_id: str, last_seq: int) -> None:
        seq_key, _ = self._keys(chat_id)
        await self._redis().set(seq_key, last_seq, nx=True, ex=self.TTL)
        self._loaded.add(chat_id)

    async def last_seq(self, chat_id: str) -> int:
        value = await self._redis().get(self._keys(chat_id)[0])
        return int(value or 0)

    async def publish(self, chat_id: str, event_type: str, data: dict[str, Any]) -> int:
        seq, text = await self._redis().eval(
            _PUBLISH, 2, *self._keys(chat_id), encode_head(event_type, data), event_type,
            self.max_events, self.TTL)
        text = text.decode() if isinstance(text, bytes) else text
        await fan_out(chat_id, int(seq), text)
        return int(seq)

    async def replay(self, chat_id: str, since: int | None) -> Replay:
        redis = self._redis()
        seq_key, events_key = self._keys(chat_id)
        last = int(await redis.get(seq_key) or 0)
        tail = await redis.zrevrange(events_key, 0, 2000)
        pairs = [m.decode().split("|", 1) for m in tail]
        partial_text = _partial_text((kind, text) for kind, text in pairs)
        if since is None or since >= last:
            return Replay([], True, last, partial_text)
        rows = await redis.zrangebyscore(events_key, since + 1, last, withscores=True)
        oldest = int(rows[0][1]) if rows else last + 1
        texts = [(int(score), member.decode().split("|", 1)[1]) for member, score in rows]
        return Replay(texts, since + 1 >= oldest, last, partial_text)


def make_hub(redis_url: str, max_events: int) -> LocalEventHub | RedisEventHub:
    """Redis when several processes share chats, process memory otherwise."""
    return RedisEventHub(redis_url, max_events) if redis_url else LocalEventHub(max_events)
