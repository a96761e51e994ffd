"""The system prompt of a chat's turns, from ``agents.prompt`` with the gateway's settings.

Before a turn, ``system_prompt_for`` also prepares the workspace (identity files seeded,
skills mirrored). ``preview`` builds the same text without writing anything: what the
chat's next turn will send, shown to admins by ``GET /api/chats/{id}``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings

from agents.prompt import prepare_system_prompt
from chats import store
from chats.store import TurnSetup


async def system_prompt_for(chat_id: str, setup: TurnSetup) -> str:
    """The turn's system prompt; seeds the workspace first (file I/O, in a thread)."""
    return await asyncio.to_thread(prepare_system_prompt, setup.workspace,
                                   setup.sandbox.enabled, settings.GATEWAY_SKILLS_DIR)


def preview(chat: Any) -> str:
    """The system prompt the chat's next turn will send (read-only)."""
    return prepare_system_prompt(store.workspace_for(chat.owner),
                                 store.sandbox_policy().enabled,
                                 settings.GATEWAY_SKILLS_DIR, write=False)
