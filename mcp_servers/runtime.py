"""This process's MCP manager: started in the server's event loop, fed from the database.

The sessions must live in the event loop that serves sockets and turns (daphne's), so
the manager is started from async code: by the turn runner before each turn (which also
applies configuration changes at once) and by the first HTTP request the process serves
(``start_on_first_request``, so servers connect at start-up, before any turn). Once
started it reloads the configuration every ``GATEWAY_MCP_PROBE_INTERVAL`` seconds.

Status is read from the manager's memory by sync code (health, admin, API): each process
reports the connections it holds itself, which is what a load balancer's probe of that
process should see. A database column written by every process would mix them up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from agents import toolbox
from agents.mcp import ManagerOptions, McpManager, ServerConfig
from mcp_servers.models import McpServer

logger = logging.getLogger(__name__)

_manager: McpManager | None = None


def options() -> ManagerOptions:
    return ManagerOptions(call_timeout=settings.GATEWAY_MCP_CALL_TIMEOUT,
                          connect_timeout=settings.GATEWAY_MCP_CONNECT_TIMEOUT,
                          probe_interval=settings.GATEWAY_MCP_PROBE_INTERVAL,
                          backoff_max=settings.GATEWAY_MCP_BACKOFF_MAX)


def enabled_configs() -> list[ServerConfig]:
    return [server.to_config() for server in McpServer.objects.filter(enabled=True)]


async def ensure_started(configs: list[ServerConfig] | None = None) -> None:
    """Start the manager in the running loop (once) and apply the current configuration
    (``configs`` when the caller has read it already, else from the database); waits
    until servers that are starting have connected or failed. Never raises: a broken
    MCP setup must not stop a turn."""
    global _manager
    try:
        loop = asyncio.get_running_loop()
        if _manager is not None and _manager.loop is not loop:
            # Only tests run several loops in one process; the old one is gone.
            toolbox.unregister(_manager)
            _manager = None
        if _manager is None:
            _manager = McpManager(options(), database_sync_to_async(enabled_configs))
            toolbox.register(_manager)
            _manager.start()
        await _manager.refresh(configs=configs)
    except Exception:  # noqa: BLE001 - reported, and the gateway goes on without MCP
        logger.exception("starting the MCP servers failed")


async def shutdown() -> None:
    """Stop every server of this process (tests, orderly stop)."""
    global _manager
    manager, _manager = _manager, None
    if manager is not None:
        toolbox.unregister(manager)
        await manager.close()


def current() -> McpManager | None:
    return _manager


def statuses() -> dict[str, dict[str, Any]]:
    """Status of each enabled server as this process sees it (sync code may call it)."""
    live = _manager.statuses() if _manager is not None else {}
    names = McpServer.objects.filter(enabled=True).values_list("name", flat=True)
    return {name: live.get(name) or {"state": "starting", "message": None, "tools": 0,
                                     "restarts": 0} for name in names}


def start_on_first_request(app: Any) -> Any:
    """ASGI middleware: the first HTTP request starts the manager (in the background)."""
    started: list[asyncio.Task[None]] = []

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if not started and scope.get("type") == "http":
            started.append(asyncio.create_task(ensure_started()))
        return await app(scope, receive, send)

    return wrapper
