"""The built-in tools (`bash`, `read`, `write`, `edit`): their schemas and their execution.

Every tool works inside one workspace folder. `read`, `write` and `edit` go through
``agents.fs``: the kernel resolves each path beneath the open workspace folder, so
``..``, absolute paths and symlinks pointing out are refused even when something swaps
a folder for a link concurrently; only regular files are read or written, reads stream
up to the output limit, and the work runs on a bounded pool of its own with a timeout.
`bash` runs with the workspace as its working directory, through the sandbox when it is
enabled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from agents import fs, warm
from agents.sandbox import SandboxPolicy, format_result

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
    """Where and how tools run for one turn.

    ``files`` is the bounded pool that runs ``read``, ``write`` and ``edit``, each within
    ``file_timeout`` seconds; ``edit_limit`` caps the size of a file ``edit`` loads.
    ``sandbox_key`` names whose warm sandbox ``bash`` uses (the chat's id); without it
    the workspace's (``agents.warm``).
    """

    workspace: Path
    sandbox: SandboxPolicy
    bash_timeout: float
    output_limit: int
    file_timeout: float = 30.0
    edit_limit: int = 8 * 1024 * 1024
    files: fs.FileRunner = field(default_factory=fs.shared_runner)
    sandbox_key: str | None = None


class ToolError(Exception):
    """A tool refused or failed; the message goes back to the model."""


def _path(args: dict[str, Any]) -> str:
    try:
        return fs.clean(args.get("path"))
    except fs.FsError as exc:
        raise ToolError(exc.message) from None


def _writable(env: ToolEnv) -> None:
    if env.sandbox.enabled and env.sandbox.workspace_mode == "ro":
        raise ToolError("the workspace is read-only (sandbox workspace_mode 'ro')")


def _read(env: ToolEnv, args: dict[str, Any], deadline: float) -> str:
    path = _path(args)
    offset, limit = args.get("offset"), args.get("limit")
    with fs.Workspace(env.workspace) as ws:
        got = ws.read_text(path, env.output_limit, offset=int(offset) if offset else None,
                           limit=int(limit) if limit else None, deadline=deadline)
    if got.truncated:
        return got.text + f"\n[... truncated: file has {got.size} bytes]"
    return got.text


def _write(env: ToolEnv, args: dict[str, Any], deadline: float) -> str:
    _writable(env)
    path = _path(args)
    content = args.get("content")
    if not isinstance(content, str):
        raise ToolError("'content' must be a string")
    with fs.Workspace(env.workspace) as ws:
        written = ws.write_bytes(path, content.encode("utf-8"), deadline=deadline)
    return f"Wrote {written} bytes to {path}"


def _edit(env: ToolEnv, args: dict[str, Any], deadline: float) -> str:
    _writable(env)
    path = _path(args)
    old, new = args.get("old_string"), args.get("new_string")
    if not isinstance(old, str) or not isinstance(new, str) or not old:
        raise ToolError("'old_string' (non-empty) and 'new_string' must be strings")
    with fs.Workspace(env.workspace) as ws:
        count = ws.edit_text(path, old, new, replace_all=bool(args.get("replace_all")),
                             max_bytes=env.edit_limit)
    return f"Replaced {count} occurrence(s) in {path}"


_FILE_TOOLS = {"read": _read, "write": _write, "edit": _edit}


async def run_tool(name: str, args: dict[str, Any], env: ToolEnv) -> ToolResult:
    """Run one built-in tool; failures come back as an error result, never an exception."""
    env.workspace.mkdir(mode=fs.DIR_MODE, parents=True, exist_ok=True)
    try:
        if name == "bash":
            command = args.get("command")
            if not isinstance(command, str) or not command.strip():
                raise ToolError("'command' must be a non-empty string")
            timeout = env.sandbox.timeout_seconds if env.sandbox.enabled else env.bash_timeout
            result = await warm.run_command(command, env.workspace, env.sandbox,
                                            timeout=timeout, output_limit=env.output_limit,
                                            key=env.sandbox_key)
            failed = result.error is not None or result.timed_out or result.exit_code != 0
            return ToolResult(format_result(result), is_error=failed)
        handler = _FILE_TOOLS.get(name)
        if handler is None:
            raise ToolError(f"unknown tool {name!r}")
        return ToolResult(await env.files.run(partial(handler, env, args),
                                              timeout=env.file_timeout))
    except ToolError as exc:
        return ToolResult(f"Error: {exc}", is_error=True)
    except fs.FsError as exc:
        return ToolResult(f"Error: {exc.message}", is_error=True)
    except (OSError, UnicodeError, ValueError, TypeError) as exc:
        return ToolResult(f"Error: {type(exc).__name__}: {exc}", is_error=True)
