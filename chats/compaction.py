"""Context compaction (issue: context accounting and compaction). Placeholder seam: the
turn runner asks ``auto_compactor`` for a ``prepare`` hook run before each model call."""

from __future__ import annotations

from typing import Any

from agents.loop import Emit, Prepare
from chats.store import TurnSetup


def auto_compactor(chat_id: str, setup: TurnSetup, emit: Emit) -> Prepare | None:
    """The hook that compacts the context before a model call when it is too full."""
    _ = (chat_id, setup, emit, Any)
    return None
