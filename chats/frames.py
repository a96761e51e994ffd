"""Client-to-server WebSocket frames: parsed and checked before anything acts on them.

Both the gateway's own forms and Clotho's (``run``, ``tool_approval`` with ``approved``)
are accepted. Anything else raises ``GatewayError("invalid_event", ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError
from gateway.jsonio import checked_json

VERDICTS = ("allow", "deny", "allow_chat")
MAX_CONTENT_BLOCKS = 100


@dataclass(frozen=True)
class UserMessage:
    content: str | list[dict[str, Any]]
    stream: bool
    attachments: tuple[str, ...] = ()  # workspace paths (files.attachments)


@dataclass(frozen=True)
class Approval:
    verdicts: dict[str, str] | None  # None: one verdict for every pending call
    approve_all: bool = False


@dataclass(frozen=True)
class Cancel:
    pass


Frame = UserMessage | Approval | Cancel


def _invalid(message: str) -> GatewayError:
    return GatewayError("invalid_event", message, 400)


def content(value: Any) -> str | list[dict[str, Any]]:
    """User message content, checked (frames, and the edit endpoint's body)."""
    if isinstance(value, str):
        if not value.strip():
            raise _invalid("'content' must not be empty")
        return value
    if isinstance(value, list) and value:
        if len(value) > MAX_CONTENT_BLOCKS:
            raise _invalid(f"at most {MAX_CONTENT_BLOCKS} content blocks")
        for block in value:
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise _invalid("each content block must be an object with a 'type'")
            if block["type"] == "text" and not isinstance(block.get("text"), str):
                raise _invalid("a text block needs a string 'text'")
        return value
    raise _invalid("'content' must be a non-empty string or a list of content blocks")


MAX_ATTACHMENTS = 20


def _attachments(value: Any) -> tuple[str, ...]:
    """Attachment references: workspace paths, checked against the workspace later."""
    if value is None:
        return ()
    if (not isinstance(value, list) or len(value) > MAX_ATTACHMENTS
            or not all(isinstance(v, str) and v.strip() for v in value)):
        raise _invalid(f"'attachments' must be a list of at most {MAX_ATTACHMENTS} "
                       "workspace paths")
    return tuple(value)


def _stream(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, bool):
        raise _invalid("'stream' must be true or false")
    return value


def parse(text: str | None, max_bytes: int) -> Frame:
    """The frame, or GatewayError(invalid_event) saying what is wrong."""
    if text is None:
        raise _invalid("send text frames containing JSON")
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise _invalid(f"frame too large: the limit is {max_bytes} bytes")
    # The same bounds and text check as REST bodies: no lone surrogate or NUL gets stored.
    frame = checked_json(text, "invalid_event", "invalid_event", what="frame")
    if not isinstance(frame, dict):
        raise _invalid("the frame must be a JSON object")
    kind = frame.get("type")
    if kind == "user_message":
        return UserMessage(content(frame.get("content")), _stream(frame.get("stream")),
                           _attachments(frame.get("attachments")))
    if kind == "run":
        data = frame.get("data")
        if not isinstance(data, dict):
            raise _invalid("'run' needs a 'data' object with a 'message'")
        return UserMessage(content(data.get("message")), _stream(data.get("stream")))
    if kind == "tool_approval":
        return _approval(frame)
    if kind == "cancel":
        return Cancel()
    if not isinstance(kind, str):
        raise _invalid("the frame needs a string 'type'")
    raise _invalid(f"unknown frame type {kind[:50]!r}; expected user_message, "
                   "tool_approval or cancel")


def _approval(frame: dict[str, Any]) -> Approval:
    verdicts = frame.get("verdicts")
    if verdicts is not None:
        if not isinstance(verdicts, dict) or not verdicts:
            raise _invalid("'verdicts' must be a non-empty object of tool_use_id: verdict")
        for call_id, verdict in verdicts.items():
            if verdict not in VERDICTS:
                raise _invalid(f"verdict for {call_id[:80]!r} must be one of "
                               f"{', '.join(VERDICTS)}")
        return Approval(dict(verdicts))
    data = frame.get("data")
    if isinstance(data, dict) and isinstance(data.get("approved"), bool):
        return Approval(None, approve_all=data["approved"])
    raise _invalid("'tool_approval' needs 'verdicts' (or Clotho's data.approved)")
