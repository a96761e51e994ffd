"""The built-in tools (`bash`, `read`, `write`, `edit`): their schemas and their execution.

Every tool works inside one workspace folder. `read`, `write` and `edit` refuse any path
that resolves outside it (``..``, absolute paths, symlinks pointing out); `bash` runs with
the workspace as its working directory, through the sandbox when it is enabled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.sandbox import SandboxPolicy, format_result, run_command

BUILTIN_TOOLS: list[dict[str, Any]] = [
    {
        "name": "bash",
        "description": "Run a shell command (bash -c) in the workspace folder. Returns its "
                       "combined stdout and stderr. Long-running commands are killed at the "
                       "timeout; output is capped.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "The command line."}},
            "required": ["command"],
        },
    },
    {
        "name": "read",
        "description": "Read a text file of the workspace. Paths are relative to the "
                       "workspace.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "offset": {"type": "integer", "minimum": 1,
                           "description": "First line to return (1-based)."},
                "limit": {"type": "integer", "minimum": 1,
                          "description": "How many lines to return."},
            },
            "required": ["path"],
        },
    },
    {
        "name": "write",
        "description": "Create or overwrite a file of the workspace with the given text; "
                       "parent folders are created.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
    {
        "name": "edit",
        "description": "Replace an exact piece of text in a workspace file. old_string must "
                       "occur exactly once unless replace_all is true.",
        "parameters": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "old_string": {"type": "string"},
                "new_string": {"type": "string"},
                "replace_all": {"type": "boolean", "default": False},
            },
            "required": ["path", "old_string", "new_string"],
        },
    },
]
BUILTIN_NAMES = [tool["name"] for tool in BUILTIN_TOOLS]


def builtin_schemas() -> list[dict[str, Any]]:
    """The built-in tools in the chat-completions ``tools`` format."""
    return [{"type": "function", "function": tool} for tool in BUILTIN_TOOLS]


@dataclass
class ToolResult:
    content: str
    is_error: bool = False
    # Set when the tool could not run at all (an MCP server down or timing out): the loop
    # also reports it to the user as ``agent.error`` ``tool_failed``.
    failure: str | None = None


@dataclass(frozen=True)
class ToolEnv:
    """Where and how tools run for one turn."""

    workspace: Path
    sandbox: SandboxPolicy
    bash_timeout: float
    output_limit: int


class ToolError(Exception):
    """A tool refused or failed; the message goes back to the model."""


def confine(workspace: Path, raw: Any) -> Path:
    """The real path of ``raw`` inside ``workspace``; ToolError if it would leave it.

    ``/workspace/x`` (the path the sandbox shows) is accepted as ``x``. Any other absolute
    path is refused, and so is anything that resolves (through ``..`` or a symlink)
    outside the workspace.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ToolError("'path' must be a non-empty string")
    if "\x00" in raw:
        raise ToolError("'path' must not contain NUL bytes")
    path = raw.strip()
    if path == "/workspace" or path.startswith("/workspace/"):
        path = path[len("/workspace"):].lstrip("/") or "."
    if Path(path).is_absolute() or path.startswith("~"):
        raise ToolError(f"{raw!r} is outside the workspace: use a path relative to it")
    root = workspace.resolve()
    try:
        target = (root / path).resolve()
    except RuntimeError:  # a symlink loop (Python < 3.13 raises RuntimeError for it)
        raise ToolError(f"{raw!r} goes through a symlink loop") from None
    if target != root and not target.is_relative_to(root):
        raise ToolError(f"{raw!r} resolves outside the workspace; refused")
    return target


def _read(env: ToolEnv, args: dict[str, Any]) -> str:
    path = confine(env.workspace, args.get("path"))
    if not path.is_file():
        raise ToolError(f"{args.get('path')!r} is not a file")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ToolError(f"{args.get('path')!r} looks like a binary file ({len(data)} bytes)")
    text = data.decode("utf-8", errors="replace")
    offset, limit = args.get("offset"), args.get("limit")
    if offset is not None or limit is not None:
        lines = text.splitlines(keepends=True)
        start = max(int(offset or 1), 1) - 1
        end = start + int(limit) if limit else None
        text = "".join(lines[start:end])
    if len(text) > env.output_limit:
        text = text[:env.output_limit] + f"\n[... truncated: file has {len(data)} bytes]"
    return text


def _write(env: ToolEnv, args: dict[str, Any]) -> str:
    if env.sandbox.enabled and env.sandbox.workspace_mode == "ro":
        raise ToolError("the workspace is read-only (sandbox workspace_mode 'ro')")
    path = confine(env.workspace, args.get("path"))
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolError("'content' must be a string")
    if path.is_dir():
        raise ToolError(f"{args.get('path')!r} is a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return f"Wrote {len(content.encode())} bytes to {path.relative_to(env.workspace.resolve())}"


def _edit(env: ToolEnv, args: dict[str, Any]) -> str:
    if env.sandbox.enabled and env.sandbox.workspace_mode == "ro":
        raise ToolError("the workspace is read-only (sandbox workspace_mode 'ro')")
    path = confine(env.workspace, args.get("path"))
    old, new = args.get("old_string"), args.get("new_string")
    if not isinstance(old, str) or not isinstance(new, str) or not old:
        raise ToolError("'old_string' (non-empty) and 'new_string' must be strings")
    if not path.is_file():
        raise ToolError(f"{args.get('path')!r} is not a file")
    text = path.read_text(encoding="utf-8")
    count = text.count(old)
    if count == 0:
        raise ToolError("old_string was not found in the file")
    if count > 1 and not args.get("replace_all"):
        raise ToolError(f"old_string occurs {count} times; make it unique or set replace_all")
    path.write_text(text.replace(old, new), encoding="utf-8")
    return f"Replaced {count if args.get('replace_all') else 1} occurrence(s) in " \
           f"{path.relative_to(env.workspace.resolve())}"


_FILE_TOOLS = {"read": _read, "write": _write, "edit": _edit}


async def run_tool(name: str, args: dict[str, Any], env: ToolEnv) -> ToolResult:
    """Run one built-in tool; failures come back as an error result, never an exception."""
    env.workspace.mkdir(parents=True, exist_ok=True)
    try:
        if name == "bash":
            command = args.get("command")
            if not isinstance(command, str) or not command.strip():
                raise ToolError("'command' must be a non-empty string")
            timeout = env.sandbox.timeout_seconds if env.sandbox.enabled else env.bash_timeout
            result = await run_command(command, env.workspace, env.sandbox,
                                       timeout=timeout, output_limit=env.output_limit)
            failed = result.error is not None or result.timed_out or result.exit_code != 0
            return ToolResult(format_result(result), is_error=failed)
        handler = _FILE_TOOLS.get(name)
        if handler is None:
            raise ToolError(f"unknown tool {name!r}")
        return ToolResult(await asyncio.to_thread(handler, env, args))
    except ToolError as exc:
        return ToolResult(f"Error: {exc}", is_error=True)
    except (OSError, UnicodeError, ValueError) as exc:
        return ToolResult(f"Error: {type(exc).__name__}: {exc}", is_error=True)
