"""The chats app's part of ``GET /health``: running turns and how tools run."""

from __future__ import annotations

from agents import sandbox as sandbox_runner
from chats import store


def health_part() -> tuple[dict, bool]:
    sandbox = store.sandbox_policy()
    probe = sandbox_runner.sandbox_status()
    available = bool(probe.get("available"))
    part = {
        "active_turns": store.running_count(),
        "sandbox": {"enabled": sandbox.enabled, "available": available,
                    "reason": probe.get("reason")},
    }
    return part, sandbox.enabled and not available
