"""The agent's identity files in each user's workspace, seeded on first use.

``PERSONALITY.md`` (who the agent is), ``USER.md`` (what it knows about the user) and
``AGENTS.md`` (standing instructions for the workspace) belong to the user: they are
created once, from the templates below, and never written again by the gateway. A file
the user deletes stays deleted (``.identity-seeded`` remembers what was seeded).
"""

from __future__ import annotations

import os
from pathlib import Path

MARKER = ".identity-seeded"

TEMPLATES: dict[str, str] = {
    "PERSONALITY.md": """\
# Personality

Who you, the agent, are when you work for this user. The user (or you, when asked) may
change this file; the gateway never overwrites it.

- Friendly, direct and concise; no filler, no flattery.
- Say what you did and what you found; say so when you are unsure.
- Ask before anything destructive or hard to undo.
""",
    "USER.md": """\
# About the user

What you have learned about the user that is worth keeping: name, role, preferences,
ongoing projects. Keep it short and current, and update it with `edit` when you learn
something lasting.

- (nothing yet)
""",
    "AGENTS.md": """\
# Working in this workspace

Standing instructions for work in this workspace: conventions, useful commands, where
things are, what to avoid. Follow them; add to them when the user asks you to remember
how something is done here.

- (none yet)
""",
}
IDENTITY_FILES = tuple(TEMPLATES)


def _seeded(workspace: Path) -> set[str]:
    marker = workspace / MARKER
    try:
        return set(marker.read_text(encoding="utf-8").split()) if marker.is_file() else set()
    except (OSError, UnicodeError):
        return set()


def seed(workspace: Path) -> list[str]:
    """Create the identity files this workspace never had; returns the names created."""
    workspace.mkdir(parents=True, exist_ok=True)
    marker = workspace / MARKER
    done = _seeded(workspace)
    created = []
    for name, text in TEMPLATES.items():
        if name in done:
            continue
        try:
            # O_EXCL: an existing file, or a link in its place, is never written through.
            fd = os.open(workspace / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        created.append(name)
    if set(TEMPLATES) - done:
        if marker.is_symlink():
            marker.unlink()
        marker.write_text("\n".join(sorted(done | set(TEMPLATES))) + "\n", encoding="utf-8")
    return created


def present(workspace: Path, *, include_unseeded: bool = False) -> list[str]:
    """The identity files the workspace has (the prompt tells the agent to read them);
    with ``include_unseeded`` also those the next ``seed`` will create."""
    pending = set(IDENTITY_FILES) - _seeded(workspace) if include_unseeded else set()
    return [name for name in IDENTITY_FILES
            if (workspace / name).is_file() or name in pending]
