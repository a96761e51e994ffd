"""MCP servers as a source of tools: one client session per enabled server.

Plain async Python on the ``mcp`` SDK, no Django: the manager is handed plain
``ServerConfig``s (by ``mcp_servers.runtime``, which reads them from the database) and
registers itself with ``agents.toolbox`` as a ``ToolProvider``, so the tools of connected
servers join the built-in ones as ``<prefix>__<tool>`` everywhere tools are listed or run.

Each server is kept by a supervisor task that lives in the event loop of the server
process (sessions hold anyio task groups, which must be entered and left in one task):
connect, list the tools, then probe every ``probe_interval`` (which also refreshes the
tool list) until the session is lost; then report the error, wait (exponential backoff)
and connect again. A server that cannot start or dies is reported in ``statuses()`` and
never raises out of the manager. Tool calls are bounded by ``call_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Awaitable, Callable, Iterable

import anyio
import httpx2

from agents.tools import ToolEnv, ToolResult

if TYPE_CHECKING:
    import mcp_types
    from mcp import Client

# The SDK (``mcp``, ``mcp_types``: ~3 s of pydantic models to import) is imported where a
# session is made or a result read, not here: every process imports this module for
# ``ServerConfig``, and most never connect to an MCP server.

logger = logging.getLogger(__name__)

TRANSPORTS = ("stdio", "http")
TOOL_SEPARATOR = "__"
# OpenAI-compatible APIs accept function names of 1-64 of these characters.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_MAX_TOOL_PAGES = 50
_STDERR_TAIL = 600


@dataclass(frozen=True)
class ServerConfig:
    """One MCP server as an admin configured it. Equal configs need no reconnect."""

    name: str
    transport: str  # "stdio" or "http"
    command: str = ""
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # values "${NAME}" come from our environment
    url: str = ""
    bearer_token_env: str = ""  # the NAME of the variable holding the token, never a token
    tool_prefix: str = ""

    @property
    def prefix(self) -> str:
        return self.tool_prefix or self.name


@dataclass(frozen=True)
class ManagerOptions:
    call_timeout: float = 60.0
    connect_timeout: float = 30.0
    probe_interval: float = 15.0  # liveness probe and tool-list refresh, config reload
    backoff_initial: float = 1.0
    backoff_max: float = 120.0


@dataclass
class ServerStatus:
    """What health, the admin and the API show for a server."""

    state: str = "starting"  # starting | connected | error | restarting
    message: str | None = None
    tools: int = 0
    restarts: int = 0
    retry_at: float | None = None  # time.monotonic() of the next attempt after an error

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"state": self.state, "message": self.message,
                                "tools": self.tools, "restarts": self.restarts}
        if self.state == "error" and self.retry_at is not None:
            body["retry_in"] = round(max(self.retry_at - time.monotonic(), 0.0), 1)
        return body


class McpCallError(Exception):
    """A call could not be made or did not finish (not a tool's own error result)."""


def tool_name(prefix: str, tool: str) -> str:
    """The name the model sees: ``<prefix>__<tool>``, made safe for function names."""
    return _NAME_UNSAFE.sub("_", f"{prefix}{TOOL_SEPARATOR}{tool}")[:64]


def resolve_env(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The server's extra environment; ``${NAME}`` values are read from ours, so secrets
    stay in the gateway's environment rather than in its database."""
    env = {}
    for key, value in pairs:
        ref = _ENV_REFERENCE.match(value)
        if ref:
            if ref.group(1) not in os.environ:
                raise McpCallError(f"environment variable {ref.group(1)} (for {key}) is "
                                   "not set on the gateway")
            value = os.environ[ref.group(1)]
        env[key] = value
    return env


def describe(exc: BaseException) -> str:
    """One line for a failure; task groups wrap the real error in exception groups."""
    from mcp import MCPError

    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return exc.error.message
    text = str(exc).strip() or type(exc).__name__
    return text if isinstance(exc, McpCallError) else f"{type(exc).__name__}: {text}"


def result_text(result: mcp_types.CallToolResult, limit: int) -> str:
    """A tool result as the text the model gets; non-text blocks are described."""
    import mcp_types

    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        elif isinstance(block, (mcp_types.ImageContent, mcp_types.AudioContent)):
            parts.append(f"[{block.type} {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif isinstance(block, mcp_types.EmbeddedResource):
            resource = block.resource
            text = getattr(resource, "text", None)
            parts.append(text if text is not None else f"[binary resource {resource.uri}]")
        elif isinstance(block, mcp_types.ResourceLink):
            parts.append(f"[resource {block.uri}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts) or "(no output)"
    if len(text) > limit:
        text = text[:limit] + f"\n[... truncated: {len(text)} characters]"
    return text


def _raise_if_cancelled() -> None:
    """Re-raise a cancel of this task that a task group swallowed: anyio may report a
    child's error instead of our cancel when both happen at once."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _stderr_tail(errlog: IO[str]) -> str:
    with contextlib.suppress(OSError, ValueError):
        errlog.seek(0)
        lines = [line for line in errlog.read().splitlines() if line.strip()]
        return " | ".join(lines[-5:])[-_STDERR_TAIL:]
    return ""


@dataclass
class _Tool:
    server: "_Server"
    tool: str  # the name the server knows
    schema: dict[str, Any]  # the chat-completions entry


@dataclass
class _Server:
    """One configured server and the task that keeps it connected."""

    config: ServerConfig
    options: ManagerOptions
    on_change: Callable[[], None]
    status: ServerStatus = field(default_factory=ServerStatus)
    client: Client | None = None
    tools: list[mcp_types.Tool] = field(default_factory=list)
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # first attempt is over
    lost: asyncio.Event = field(default_factory=asyncio.Event)  # a call saw it die
    task: asyncio.Task[None] | None = None
    scope: anyio.CancelScope | None = None  # the current session's, while there is one
    stopping: bool = False

    @property
    def name(self) -> str:
        return self.config.name

    def start(self) -> None:
        self.task = asyncio.create_task(self._supervise(), name=f"mcp-server:{self.name}")

    async def stop(self) -> None:
        """End the session and the supervisor. A session is cancelled through its anyio
        scope: the SDK shields its shutdown (close stdin, wait, kill the process group)
        from anyio cancels only, and a native ``task.cancel()`` could cut it short and
        leave the server process running."""
        self.stopping = True
        task = self.task
        if task and not task.done():
            if self.scope is not None:
                self.scope.cancel()
            else:  # between sessions (backoff): nothing of the SDK is running
                task.cancel()
            done, _ = await asyncio.wait({task}, timeout=15)
            if not done:
                logger.warning("MCP server %r did not stop in time", self.name)
                task.cancel()
        self._set(None, [])

    def _set(self, client: Client | None, tools: list[mcp_types.Tool]) -> None:
        self.client, self.tools = client, tools
        self.status.tools = len(tools)
        self.on_change()

    async def _supervise(self) -> None:
        delay = self.options.backoff_initial
        while True:
            # The server's stderr, kept so that a crash can be reported with its last words.
            errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
            try:
                await self._serve(errlog)
                message = "the connection closed"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a server is reported
                message = describe(exc)
                stderr = _stderr_tail(errlog) if self.config.transport == "stdio" else ""
                if stderr:
                    message = f"{message} (stderr: {stderr})"
            finally:
                errlog.close()
            _raise_if_cancelled()
            if self.stopping:
                return
            if self.client is not None:
                delay = self.options.backoff_initial  # it worked for a while: start over
            self._set(None, [])
            self.status.state, self.status.message = "error", message
            self.status.retry_at = time.monotonic() + delay
            self.settled.set()
            logger.warning("MCP server %r: %s; retrying in %g s", self.name, message, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.options.backoff_max)
            self.status.state, self.status.retry_at = "restarting", None
            self.status.restarts += 1

    def _transport(self, errlog: IO[str], stack: contextlib.AsyncExitStack) -> Any:
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client
        from mcp.client.streamable_http import streamable_http_client

        config = self.config
        if config.transport == "stdio":
            params = StdioServerParameters(command=config.command, args=list(config.args),
                                           env=resolve_env(config.env) or None)
            return stdio_client(params, errlog=errlog)
        headers = {}
        if config.bearer_token_env:
            token = os.environ.get(config.bearer_token_env)
            if not token:
                raise McpCallError(f"environment variable {config.bearer_token_env} (its "
                                   "bearer token) is not set on the gateway")
            headers["Authorization"] = f"Bearer {token}"
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(
            self.options.connect_timeout, read=max(self.options.call_timeout, 300.0)))
        stack.push_async_callback(http.aclose)
        return streamable_http_client(config.url, http_client=http)

    async def _serve(self, errlog: IO[str]) -> None:
        """Connect, publish the tools, and return when the session is lost."""
        import mcp_types
        from mcp import Client

        async with contextlib.AsyncExitStack() as stack:
            transport = self._transport(errlog, stack)
            # One anyio scope around the whole session (scopes must nest): its deadline
            # bounds the connection and is lifted once the tools are listed.
            self.scope = anyio.CancelScope(deadline=anyio.current_time()
                                           + self.options.connect_timeout)
            try:
                with self.scope:
                    async with Client(transport,
                                      read_timeout_seconds=self.options.call_timeout,
                                      client_info=mcp_types.Implementation(
                                          name="agent-gateway", version="1")) as client:
                        tools = await self._list_tools(client)
                        self.scope.deadline = math.inf
                        self._set(client, tools)
                        self.status.state, self.status.message = "connected", None
                        self.settled.set()
                        logger.info("MCP server %r connected: %d tool(s)", self.name,
                                    len(tools))
                        await self._watch(client)
            finally:
                cancelled, self.scope = self.scope.cancelled_caught, None
            if cancelled and not self.stopping:
                raise McpCallError(f"no answer within {self.options.connect_timeout:g} s "
                                   "of starting")

    async def _list_tools(self, client: Client) -> list[mcp_types.Tool]:
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    async def _watch(self, client: Client) -> None:
        """Probe the session until it fails; the probe refreshes the tool list."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.lost.wait(), self.options.probe_interval)
            self.lost.clear()
            with anyio.fail_after(self.options.call_timeout):
                tools = await self._list_tools(client)
            if [t.model_dump() for t in tools] != [t.model_dump() for t in self.tools]:
                self._set(client, tools)

    async def call(self, tool: str, args: dict[str, Any]) -> mcp_types.CallToolResult:
        import mcp_types
        from mcp import MCPError

        client = self.client
        if client is None:
            detail = f": {self.status.message}" if self.status.message else ""
            raise McpCallError(f"is not connected ({self.status.state}{detail})")
        timeout = self.options.call_timeout
        try:
            # The SDK's own timeout first; ours, a little later, also bounds the sending.
            with anyio.fail_after(timeout + 1):
                return await client.call_tool(tool, args, read_timeout_seconds=timeout)
        except TimeoutError:
            raise McpCallError(f"no result within {timeout:g} s") from None
        except MCPError as exc:
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                raise McpCallError(f"no result within {timeout:g} s") from None
            if exc.code == mcp_types.CONNECTION_CLOSED:
                self.lost.set()
                raise McpCallError("the server closed the connection (it is restarted)") \
                    from None
            raise McpCallError(exc.error.message) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            self.lost.set()
            raise McpCallError(f"the connection failed: {describe(exc)}") from None


ConfigLoader = Callable[[], Awaitable[list[ServerConfig]]]


class McpManager:
    """The MCP servers of this process, and the ``ToolProvider`` of their tools."""

    def __init__(self, options: ManagerOptions, loader: ConfigLoader) -> None:
        self.options = options
        self.loader = loader
        self.loop = asyncio.get_running_loop()
        self._servers: dict[str, _Server] = {}
        self._index: dict[str, _Tool] = {}  # <prefix>__<tool> -> where it runs
        self._lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Reload the configuration every probe interval (an admin's change applies)."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch_config(), name="mcp-config")

    async def _watch_config(self) -> None:
        while True:
            await asyncio.sleep(self.options.probe_interval)
            try:
                await self.refresh(wait=False)
            except Exception:  # noqa: BLE001 - a failed reload must not stop reloading
                logger.exception("reloading the MCP server configuration failed")

    async def refresh(self, wait: bool = True,
                      configs: list[ServerConfig] | None = None) -> None:
        """Apply the current configuration (``configs``, or else what the loader reads):
        start new servers, stop removed ones, restart changed ones. With ``wait``, return
        once every server starting has connected or failed (bounded by the connect
        timeout), so a turn sees their tools."""
        if configs is None:
            configs = await self.loader()
        async with self._lock:
            await self._apply(configs)
        starting = [s.settled for s in self._servers.values() if not s.settled.is_set()]
        if wait and starting:
            waits = [asyncio.ensure_future(event.wait()) for event in starting]
            # Past the connect timeout the SDK still takes a few seconds to stop the
            # process (close stdin, wait, terminate) before the failure is reported.
            await asyncio.wait(waits, timeout=self.options.connect_timeout + 8)
            for waiter in waits:
                waiter.cancel()

    async def _apply(self, configs: list[ServerConfig]) -> None:
        wanted = {c.name: c for c in configs}
        gone = [s for name, s in self._servers.items() if wanted.get(name) != s.config]
        for server in gone:
            del self._servers[server.name]
        await asyncio.gather(*(server.stop() for server in gone))
        for name, config in wanted.items():
            if name not in self._servers:
                server = _Server(config, self.options, self._reindex)
                self._servers[name] = server
                server.start()
        self._reindex()

    async def close(self) -> None:
        if self._watcher:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        async with self._lock:
            await self._apply([])

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Each server's status; sync code in other threads may call it."""
        servers = dict(self._servers)  # one C-level copy: safe while the loop changes it
        return {name: servers[name].status.to_dict() for name in sorted(servers)}

    # -- the ToolProvider --------------------------------------------------------------
    def _reindex(self) -> None:
        """Rebuild the name index. A restarting server keeps its names (a call in flight
        gets a clear error) but only connected servers' schemas are offered."""
        index: dict[str, _Tool] = {}
        for server in self._servers.values():
            for tool in server.tools:
                name = tool_name(server.config.prefix, tool.name)
                if name in index:
                    logger.warning("MCP tool %s of %r hides one of another server", name,
                                   server.name)
                    continue
                index[name] = _Tool(server, tool.name, {"type": "function", "function": {
                    "name": name,
                    "description": f"[MCP server {server.name}] {tool.description or ''}"
                                   .strip(),
                    "parameters": tool.input_schema or {"type": "object", "properties": {}},
                }})
        for name, entry in self._index.items():
            server = entry.server
            if name not in index and server.client is None \
                    and server is self._servers.get(server.name):
                index[name] = entry  # its server is reconnecting
        self._index = index  # one assignment: readers in other threads see old or new

    def names(self) -> list[str]:
        return list(self._index)

    def schemas(self) -> list[dict[str, Any]]:
        return [t.schema for t in self._index.values() if t.server.client is not None]

    async def run(self, name: str, args: dict[str, Any], env: ToolEnv) -> ToolResult:
        entry = self._index.get(name)
        if entry is None:
            return ToolResult(f"Error: unknown tool {name!r}", is_error=True)
        try:
            result = await entry.server.call(entry.tool, args)
        except McpCallError as exc:
            _raise_if_cancelled()
            failure = f"The MCP tool {name} failed: server {entry.server.name!r} {exc}"
            return ToolResult(f"Error: {failure}", is_error=True, failure=failure)
        except Exception as exc:  # noqa: BLE001 - an SDK surprise must not end the turn
            _raise_if_cancelled()
            logger.exception("MCP tool %s failed", name)
            failure = f"The MCP tool {name} failed: {describe(exc)}"
            return ToolResult(f"Error: {failure}", is_error=True, failure=failure)
        return ToolResult(result_text(result, env.output_limit), is_error=result.is_error)
