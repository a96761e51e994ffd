"""The built-in tools (`bash`, `read`, `write`, `edit`): their schemas and their execution.

Every tool works inside one workspace folder. `read`, `write` and `edit` go through
``agents.fs``: the kernel resolves each path beneath the open workspace folder, so
``..``, absolute paths and symlinks pointing out are refused even when something swaps
a folder for a link concurrently; only regular files are read or written, reads stream
up to the output limit, and the work runs on a bounded pool of its own with a timeout.
`bash` runs with the workspace as its working directory, through the sandbox when it is
enabled.

The workspace quota (``ToolEnv.quota``): `write` and `edit` check, before they write, that
the workspace will still fit it, and refuse with an error result naming the quota (and
write nothing) when it would not. `bash` cannot be checked before the fact (what a
command writes is known only once it ran); after a `bash` call the workspace is measured
and, when it is over its quota, the result says so, so the model can clean up.
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
    ``quota`` is what the workspace may hold (None: no limit).
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
    quota: fs.Quota | None = None
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
    data = content.encode("utf-8")
    with fs.Workspace(env.workspace) as ws:
        if env.quota is not None:
            ws.check_quota(env.quota, len(data), 1, replacing=path)
        written = ws.write_bytes(path, data, deadline=deadline)
    return f"Wrote {written} bytes to {path}"


def _edit(env: ToolEnv, args: dict[str, Any], deadline: float) -> str:
    _writable(env)
    path = _path(args)
    old, new = args.get("old_string"), args.get("new_string")
    if not isinstance(old, str) or not isinstance(new, str) or not old:
        raise ToolError("'old_string' (non-empty) and 'new_string' must be strings")
    with fs.Workspace(env.workspace) as ws:
        count = ws.edit_text(path, old, new, replace_all=bool(args.get("replace_all")),
                             max_bytes=env.edit_limit, quota=env.quota)
    return f"Replaced {count} occurrence(s) in {path}"


_FILE_TOOLS = {"read": _read, "write": _write, "edit": _edit}


def _over_quota(env: ToolEnv, deadline: float) -> str | None:
    """A note for the model when the workspace holds more than its quota, else None."""
    if env.quota is None:
        return None
    with fs.Workspace(env.workspace) as ws:
        used = ws.usage()
    if not env.quota.exceeded_by(used):
        return None
    return (f"[Note: the workspace now holds {used.bytes} bytes in {used.files} files, over "
            f"its quota of {env.quota.max_bytes} bytes and {env.quota.max_files} files; "
            "write, edit and uploads are refused until files are deleted.]")


async def _quota_note(env: ToolEnv) -> str | None:
    """``_over_quota`` after a bash call; a workspace that cannot be measured (a timeout,
    a folder too deep) gets no note rather than a failed call."""
    if env.quota is None:
        return None
    try:
        return await env.files.run(partial(_over_quota, env), timeout=env.file_timeout)
    except (fs.FsError, OSError):
        return None


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
            output = format_result(result)
            note = await _quota_note(env)
            return ToolResult(f"{output}\n{note}" if note else output, is_error=failed)
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
