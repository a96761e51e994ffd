"""Every server-to-client event type and its payload keys, declared once.

The loop, the turn runner, the consumer and the tests all use these names; a test checks
every event the code sends against ``PAYLOAD_KEYS``.
"""

from __future__ import annotations

from typing import Any

STATE = "agent.state"
TURN_STARTED = "agent.turn_started"
TEXT_DELTA = "agent.text_delta"
TEXT = "agent.text"
TOOL_REQUEST = "agent.tool_request"
TOOL_DENIED = "agent.tool_denied"
TOOL_USE = "agent.tool_use"
TOOL_RESULT = "agent.tool_result"
TURN_COMPLETE = "agent.turn_complete"
CANCELLED = "agent.cancelled"
ERROR = "agent.error"
COMPACTION_STARTED = "agent.compaction_started"
CONTEXT_COMPACTED = "agent.context_compacted"
QUEUED = "agent.queued"
TITLE = "agent.title"  # the server wrote the chat's title (after the first reply)

# Required keys of each event's ``data`` (extra keys are allowed where noted in PROTOCOL.md).
PAYLOAD_KEYS: dict[str, frozenset[str]] = {
    STATE: frozenset({"running", "queued", "pending_tool_calls", "partial_text"}),
    TURN_STARTED: frozenset({"message_id"}),
    TEXT_DELTA: frozenset({"text"}),
    TEXT: frozenset({"text"}),
    TOOL_REQUEST: frozenset({"tool_calls"}),
    TOOL_DENIED: frozenset({"tool_calls", "reason"}),
    TOOL_USE: frozenset({"tool_use_id", "tool_name", "arguments"}),
    TOOL_RESULT: frozenset({"tool_use_id", "tool_name", "content", "is_error"}),
    TURN_COMPLETE: frozenset({"stop_reason", "model", "usage"}),
    CANCELLED: frozenset({"message"}),
    ERROR: frozenset({"code", "message"}),
    COMPACTION_STARTED: frozenset({"tokens_before", "context_window"}),
    CONTEXT_COMPACTED: frozenset({"tokens_before", "tokens_after", "turns_removed"}),
    QUEUED: frozenset({"message_id", "position"}),
    TITLE: frozenset({"title"}),
}

# Codes of agent.error.
ERROR_CODES = frozenset({
    "invalid_event", "upstream_error", "no_profile", "approval_timeout", "turn_failed",
    "sandbox_unavailable", "interrupted", "replay_unavailable", "compaction_failed",
    "invalid_tool_call",
    "tool_failed",
})


def check_event(event_type: str, data: dict[str, Any]) -> None:
    """Raise ValueError when an event does not match its declaration."""
    if event_type not in PAYLOAD_KEYS:
        raise ValueError(f"undeclared event type {event_type!r}")
    missing = PAYLOAD_KEYS[event_type] - set(data)
    if missing:
        raise ValueError(f"{event_type} lacks {sorted(missing)}")
    if event_type == ERROR and data["code"] not in ERROR_CODES:
        raise ValueError(f"undeclared error code {data['code']!r}")
