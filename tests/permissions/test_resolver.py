"""``permissions.resolver.level_for``: the mode's rule, an override beating it, and "allow
for this chat" turning an ask into an allow but never lifting a deny."""

from __future__ import annotations

import pytest

from permissions.resolver import level_for

TOOLS = ["bash", "read", "write", "edit", "mcp_search"]

# What each mode answers for each tool, with no override: written out, not derived.
MODE_TABLE = {
    "interactive": {"bash": "ask", "read": "ask", "write": "ask", "edit": "ask",
                    "mcp_search": "ask"},
    "autonomous": {"bash": "allow", "read": "allow", "write": "allow", "edit": "allow",
                   "mcp_search": "allow"},
    "readonly": {"bash": "deny", "read": "allow", "write": "deny", "edit": "deny",
                 "mcp_search": "deny"},
}
CASES = [(mode, tool, level) for mode, row in MODE_TABLE.items() for tool, level in row.items()]


@pytest.mark.parametrize("mode, tool, expected", CASES)
def test_without_an_override_the_mode_decides(mode: str, tool: str, expected: str) -> None:
    assert level_for(tool, mode, {}) == expected


@pytest.mark.parametrize("override", ["allow", "ask", "deny"])
@pytest.mark.parametrize("mode", list(MODE_TABLE))
@pytest.mark.parametrize("tool", TOOLS)
def test_an_override_beats_every_mode(tool: str, mode: str, override: str) -> None:
    assert level_for(tool, mode, {tool: override}) == override


@pytest.mark.parametrize("mode", list(MODE_TABLE))
def test_an_override_of_another_tool_changes_nothing(mode: str) -> None:
    overrides = {"edit": "deny", "write": "allow", "read": "ask"}

    assert level_for("bash", mode, overrides) == MODE_TABLE[mode]["bash"]


@pytest.mark.parametrize("mode, tool, without, with_chat", [
    ("interactive", "bash", "ask", "allow"),
    ("interactive", "mcp_search", "ask", "allow"),
    ("autonomous", "bash", "allow", "allow"),
    ("readonly", "read", "allow", "allow"),
    ("readonly", "bash", "deny", "deny"),  # never lifts the mode's deny
    ("readonly", "write", "deny", "deny"),
])
def test_allow_for_this_chat_turns_ask_into_allow_only(mode: str, tool: str, without: str,
                                                        with_chat: str) -> None:
    assert level_for(tool, mode, {}) == without
    assert level_for(tool, mode, {}, frozenset({tool})) == with_chat


@pytest.mark.parametrize("mode", list(MODE_TABLE))
@pytest.mark.parametrize("override, expected", [("ask", "allow"), ("allow", "allow"),
                                                ("deny", "deny")])
def test_allow_for_this_chat_over_an_override(mode: str, override: str, expected: str) -> None:
    assert level_for("bash", mode, {"bash": override}, {"bash"}) == expected


def test_allow_for_this_chat_is_per_tool() -> None:
    assert level_for("bash", "interactive", {}, {"write"}) == "ask"
    assert level_for("write", "interactive", {}, {"write"}) == "allow"
