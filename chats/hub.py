"""Per-chat event streams: ``seq`` numbering, the replay window, and fan-out.

Every event of a chat goes through ``publish``: it gets the next ``seq`` and a timestamp,
is serialised once, kept in a bounded replay window (for ``?since=``), and sent to the
chat's group, so every socket of the chat sees it. This is the streaming hot path: no
database access and no thread hop here.

This implementation keeps seq and the window in process memory, which is right for one
process (the embedded default); ``chats.hub_redis`` keeps them in Redis for several.
"""

from __future__ import annotations

import datetime as dt
import json
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
    return json.dumps({"type": event_type, "data": data, "seq": seq, "timestamp": now_iso()},
                      ensure_ascii=False, separators=(",", ":"))


@dataclass
class _Stream:
    last_seq: int
    events: deque[tuple[int, str, str]] = field(default_factory=deque)  # seq, type, json
    turn_start_seqs: deque[int] = field(default_factory=lambda: deque(maxlen=2))


@dataclass
class Replay:
    events: list[str]        # encoded events with seq > since, oldest first
    complete: bool           # False when some events after `since` are no longer kept
    last_seq: int
    partial_text: str        # streamed text of the model call in progress


class LocalEventHub:
    """seq, replay window and fan-out for one process."""

    def __init__(self, max_events: int, max_chats: int = 2000) -> None:
        self.max_events = max_events
        self.max_chats = max_chats
        self._streams: OrderedDict[str, _Stream] = OrderedDict()

    def is_loaded(self, chat_id: str) -> bool:
        return chat_id in self._streams

    def load(self, chat_id: str, last_seq: int) -> None:
        """Start numbering after ``last_seq`` (the value saved in the database) unless the
        chat's stream is already live in this process."""
        if chat_id not in self._streams:
            self._streams[chat_id] = _Stream(last_seq=last_seq)
            while len(self._streams) > self.max_chats:
                self._streams.popitem(last=False)

    def last_seq(self, chat_id: str) -> int:
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
        await get_channel_layer().group_send(group_name(chat_id),
                                             {"type": "chat.event", "seq": seq, "text": text})
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

    def replay(self, chat_id: str, since: int | None) -> Replay:
        stream = self._streams.get(chat_id)
        if stream is None:
            return Replay([], since is None, 0, "")
        events = stream.events
        partial: list[str] = []
        for _, event_type, text in reversed(events):
            if event_type != ev.TEXT_DELTA:
                break
            partial.append(json.loads(text)["data"]["text"])
        partial_text = "".join(reversed(partial))
        if since is None or since >= stream.last_seq:
            return Replay([], True, stream.last_seq, partial_text)
        oldest = events[0][0] if events else stream.last_seq + 1
        complete = since + 1 >= oldest
        return Replay([text for seq, _, text in events if seq > since], complete,
                      stream.last_seq, partial_text)
