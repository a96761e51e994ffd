"""The agent's identity files in each user's workspace, seeded on first use.

``PERSONALITY.md`` (who the agent is), ``USER.md`` (what it knows about the user) and
``AGENTS.md`` (standing instructions for the workspace) belong to the user: they are
created once, from the templates below, and never written again by the gateway. A file
the user deletes stays deleted (``.identity-seeded`` remembers what was seeded).
"""

from __future__ import annotations

from pathlib import Path

from agents import fs

MARKER = ".identity-seeded"
_MARKER_LIMIT = 4096  # bytes; a bigger marker is not ours

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


def _seeded(ws: fs.Workspace) -> set[str]:
    try:
        return set(ws.read_bytes(MARKER, _MARKER_LIMIT).decode("utf-8").split())
    except (fs.FsError, UnicodeError):
        return set()


def seed(workspace: Path) -> list[str]:
    """Create the identity files this workspace never had; returns the names created.

    Both the files and the marker go through ``agents.fs``: a file is created only where
    nothing is (``O_EXCL``, so never through a link), and the marker is replaced by a
    rename inside the workspace, so a link in its place is never written through.
    """
    with fs.Workspace(workspace) as ws:
        done = _seeded(ws)
        created = [name for name, text in TEMPLATES.items()
                   if name not in done and ws.create_exclusive(name, text.encode("utf-8"))]
        if set(TEMPLATES) - done:
            ws.remove(MARKER, missing_ok=True)  # a link there goes, not what it points to
            ws.write_bytes(MARKER, ("\n".join(sorted(done | set(TEMPLATES))) + "\n")
                           .encode("utf-8"), parents=False)
    return created


def present(workspace: Path, *, include_unseeded: bool = False) -> list[str]:
    """The identity files the workspace has (the prompt tells the agent to read them);
    with ``include_unseeded`` also those the next ``seed`` will create."""
    if not workspace.is_dir():  # a preview before the first turn creates nothing
        return list(IDENTITY_FILES) if include_unseeded else []
    with fs.Workspace(workspace, create=False) as ws:
        pending = set(IDENTITY_FILES) - _seeded(ws) if include_unseeded else set()
        return [name for name in IDENTITY_FILES if ws.is_file(name) or name in pending]
