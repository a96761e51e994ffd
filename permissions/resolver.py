"""Which level applies to a tool call: an override beats the mode."""

from __future__ import annotations

from typing import Mapping

# Tools that only read; `readonly` mode allows these and denies everything else.
READ_ONLY_TOOLS = frozenset({"read"})

_MODE_LEVEL = {"interactive": "ask", "autonomous": "allow", "readonly": "deny"}


def level_for(tool_name: str, mode: str, overrides: Mapping[str, str],
              chat_allowed: frozenset[str] | set[str] = frozenset()) -> str:
    """``allow``, ``ask`` or ``deny`` for one call.

    A per-tool override set by an admin beats the mode's rule. "Allow for this chat"
    (``chat_allowed``) only turns an ``ask`` into ``allow``: it never lifts a ``deny``.
    """
    if tool_name in overrides:
        level = overrides[tool_name]
    elif mode == "readonly":
        level = "allow" if tool_name in READ_ONLY_TOOLS else "deny"
    else:
        level = _MODE_LEVEL[mode]
    if level == "ask" and tool_name in chat_allowed:
        return "allow"
    return level
