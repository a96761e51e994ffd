"""The chats app's part of ``GET /health`` (running turns and how tools run), and the
line ``serve`` prints about it at start-up."""

from __future__ import annotations

import logging
from typing import Any

from agents import sandbox as sandbox_runner
from chats import store

log = logging.getLogger(__name__)

UNSANDBOXED_WARNING = (
    "WARNING: tools run unconfined (GATEWAY_UNSANDBOXED_TOOLS=true and the sandbox config "
    "is not enabled): any member's `bash` can read and change everything this server's "
    "user can, the secret key and the database included. Unset it on a shared server.")


def tool_mode() -> tuple[str, dict]:
    """``sandboxed``, ``unavailable`` (sandbox required but bubblewrap unusable: ``bash``
    refuses to run) or ``unsandboxed`` (the operator's opt-out); and the probe."""
    probe = sandbox_runner.sandbox_status()
    if not store.sandbox_policy().enabled:
        return "unsandboxed", probe
    return ("sandboxed" if probe.get("available") else "unavailable"), probe


def health_part() -> tuple[dict, bool]:
    mode, probe = tool_mode()
    part = {
        "active_turns": store.running_count(),
        "sandbox": {"tools": mode, "enabled": mode != "unsandboxed",
                    "available": bool(probe.get("available")), "reason": probe.get("reason"),
                    "network": bool(probe.get("network"))},
    }
    return part, mode == "unavailable"


def announce_tool_mode(sender: Any, **kwargs: Any) -> str:
    """``serve_prepare``: say how tools run; loudly when they run unconfined."""
    mode, probe = tool_mode()
    if mode == "unsandboxed":
        log.warning(UNSANDBOXED_WARNING)
        return UNSANDBOXED_WARNING
    if mode == "unavailable":
        line = (f"WARNING: the sandbox is unusable ({probe.get('reason')}): `bash` calls will "
                f"fail until you {sandbox_runner.INSTALL_HINT}.")
        log.warning(line)
        return line
    return "Tools run sandboxed (bubblewrap)."
