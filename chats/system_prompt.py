"""The system prompt of a chat's turns, from ``agents.prompt`` with the gateway's settings.

A turn's prompt is built from the parts of its workspace (identity files present, skills)
that this process prepared before (identity files seeded, skills mirrored), as long as
``workspace_stamp`` (a few ``stat`` calls) says the files they came from did not change:
then nothing before the model call touches the files or hops to a thread. The first turn
of a workspace in a process, or one after a change, prepares it first, in a thread. After
every turn the workspace is prepared again, off the path to the next first token, so the
skills mirror is repaired before the next turn's tools run whatever the last one did.

``preview`` builds the same text without writing anything: what the chat's next turn will
send, shown to admins by ``GET /api/chats/{id}``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from pathlib import Path
from typing import Any

from django.conf import settings

from agents.prompt import (
    WorkspaceParts,
    prepare_system_prompt,
    prepare_workspace,
    prompt_from,
    workspace_stamp,
)
from chats import store
from chats.store import TurnSetup

# Workspaces whose parts this process keeps (the least recently used go first).
MAX_WORKSPACES = 4096

_parts: "OrderedDict[tuple[Path, Path | None], WorkspaceParts]" = OrderedDict()


def _key(setup: TurnSetup) -> tuple[Path, Path | None]:
    return setup.workspace, settings.GATEWAY_SKILLS_DIR


def _keep(key: tuple[Path, Path | None], parts: WorkspaceParts) -> WorkspaceParts:
    _parts[key] = parts
    _parts.move_to_end(key)
    while len(_parts) > MAX_WORKSPACES:
        _parts.popitem(last=False)
    return parts


async def prepare(setup: TurnSetup) -> WorkspaceParts:
    """Seed and mirror the turn's workspace (in a thread) and keep what the prompt needs."""
    key = _key(setup)
    return _keep(key, await asyncio.to_thread(prepare_workspace, *key))


async def system_prompt_for(chat_id: str, setup: TurnSetup) -> str:
    """The turn's system prompt; the workspace is prepared first unless this process
    already did and its files did not change since."""
    key = _key(setup)
    parts = _parts.get(key)
    if parts is None or parts.stamp != workspace_stamp(*key):
        parts = await prepare(setup)
    return prompt_from(setup.workspace, setup.sandbox.enabled, parts)


def preview(chat: Any) -> str:
    """The system prompt the chat's next turn will send (read-only)."""
    return prepare_system_prompt(store.workspace_for(chat.owner),
                                 store.sandbox_policy().enabled,
                                 settings.GATEWAY_SKILLS_DIR, write=False)
