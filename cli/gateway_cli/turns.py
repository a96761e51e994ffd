"""Knowing when "my" turn has ended, from the chat's event stream.

A socket sees every event of its chat, including turns that other clients started. After
sending a message we follow events until a turn that *started after the send* ends with
``agent.turn_complete`` or ``agent.cancelled``: when our message had to wait behind
another turn, that turn's end is skipped and ours is followed.
"""

from __future__ import annotations

from typing import Any

TURN_END = ("agent.turn_complete", "agent.cancelled")


class TurnWatch:
    def __init__(self, started: bool = False) -> None:
        self.started = started
        self.ended = False
        self.errors: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.cancelled = False
        self.rejected = False  # the frame itself was refused (invalid_event) before a turn

    def feed(self, ev: dict[str, Any]) -> bool:
        """Take one event; True when the followed turn is over."""
        typ = ev.get("type")
        data = ev.get("data") or {}
        if typ == "agent.turn_started":
            self.started = True
        elif typ == "agent.error":
            if self.started:
                self.errors.append(data)
            elif data.get("code") == "invalid_event":
                self.errors.append(data)
                self.rejected = self.ended = True
        elif typ == "client.closed":
            self.errors.append({"code": "disconnected", "message": data.get("reason", "")})
            self.ended = True
        elif typ in TURN_END and self.started:
            self.ended = True
            if typ == "agent.cancelled":
                self.cancelled = True
            else:
                self.stop_reason = data.get("stop_reason")
        return self.ended

    @property
    def failed(self) -> bool:
        return bool(self.errors) or self.cancelled or self.stop_reason == "error"
