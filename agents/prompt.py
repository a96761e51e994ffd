"""The system prompt, assembled in one place.

``build_system_prompt`` puts the parts together (core prompt, date, environment,
identity files, extra tools, skills) and does no I/O but the platform's name.
``prepare_system_prompt`` gathers those parts for one workspace first: it seeds the
identity files, mirrors the skills into the workspace and lists the tools of the other
providers (MCP servers). It does blocking file I/O: call it in a thread.
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
from pathlib import Path
from typing import Any, Sequence

from agents import fs, identity, skills as skills_mod, toolbox, tools
from agents.skills import Skill

logger = logging.getLogger(__name__)

CORE_PROMPT = (
    "You are an agent running on a self-hosted gateway. You help the user by answering "
    "and, when useful, by using your tools: `bash` runs a shell command, `read`, `write` "
    "and `edit` work on files. Tools only reach the user's workspace folder; use paths "
    "relative to it. Some tool calls need the user's approval and may be denied: then "
    "say what you would have done instead of retrying the same call. Be concise."
)
_TOOL_LINE = 160  # characters of a tool's description in the prompt


def _identity_part(files: Sequence[str]) -> str:
    listed = ", ".join(f"`{name}`" for name in files)
    return (
        f"Identity: the workspace holds {listed}: `PERSONALITY.md` says who you are and "
        "how you speak, `USER.md` what you know about the user, `AGENTS.md` standing "
        "instructions for this workspace. Read them with `read` at the start of a "
        "conversation, before your first answer, and follow them. When you learn "
        "something lasting about the user, or are asked to remember something, update "
        "these files with `edit`."
    )


def _tools_part(extra_tools: Sequence[dict[str, Any]]) -> str:
    lines = ["Extra tools (from MCP servers; they may need approval like the others):"]
    for schema in extra_tools:
        function = schema.get("function", schema)
        description = " ".join(str(function.get("description") or "").split())
        if len(description) > _TOOL_LINE:
            description = description[:_TOOL_LINE - 3] + "..."
        lines.append(f"- `{function['name']}`" + (f": {description}" if description else ""))
    return "\n".join(lines)


def _skills_part(skills: Sequence[Skill]) -> str:
    lines = ["Skills: instructions for particular kinds of task. When a task matches a "
             "skill, first read its file with `read` and follow it; files next to it "
             "(scripts, references) are in the same folder."]
    lines += [f"- {s.name}: {s.description} (read `{s.path}`)" for s in skills]
    return "\n".join(lines)


def build_system_prompt(workspace: Path, sandboxed: bool, *,
                        today: dt.date | None = None,
                        extra_tools: Sequence[dict[str, Any]] = (),
                        skills: Sequence[Skill] = (),
                        identity_files: Sequence[str] = ()) -> str:
    """The system message: core prompt, date, environment, identity, extra tools, skills.

    ``extra_tools`` are chat-completions tool entries of tools beyond the built-ins;
    ``identity_files`` the identity files present in the workspace.
    """
    today = today or dt.date.today()
    where = "/workspace (a sandbox)" if sandboxed else str(workspace)
    parts = [
        CORE_PROMPT,
        f"Today is {today.isoformat()}.",
        f"Environment: workspace {where}; platform {platform.system()} "
        f"{platform.machine()}.",
    ]
    if identity_files:
        parts.append(_identity_part(identity_files))
    if extra_tools:
        parts.append(_tools_part(extra_tools))
    if skills:
        parts.append(_skills_part(skills))
    return "\n\n".join(parts)


def extra_tool_schemas() -> list[dict[str, Any]]:
    """The tools the model is offered beyond the built-ins (MCP servers' tools)."""
    return [s for s in toolbox.schemas() if s["function"]["name"] not in tools.BUILTIN_NAMES]


def prepare_system_prompt(workspace: Path, sandboxed: bool, skills_dir: Path | None,
                          *, write: bool = True) -> str:
    """Seed the identity files, mirror the skills, and build the prompt for a turn.

    ``write=False`` changes nothing and builds the prompt the next turn will send. A
    workspace the gateway cannot write to costs the identity or skills part, never the
    turn: the failure is logged and the prompt is built without it.
    """
    identity_files: list[str] = []
    found: list[Skill] = []
    try:
        if write:
            identity.seed(workspace)
        identity_files = identity.present(workspace, include_unseeded=not write)
    except (OSError, fs.FsError):
        logger.exception("seeding the identity files of %s failed", workspace)
    try:
        found = skills_mod.discover(skills_dir)
        if write:
            skills_mod.sync_into(workspace, skills_dir, found)
    except (OSError, fs.FsError):
        logger.exception("mirroring the skills into %s failed", workspace)
        found = []
    return build_system_prompt(workspace, sandboxed, extra_tools=extra_tool_schemas(),
                               skills=found, identity_files=identity_files)
