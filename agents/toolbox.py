"""The tools the model sees: the built-ins, then tools of other providers (MCP servers).

Everything that lists or runs tools (the turn runner, ``GET /api/permissions/tools``, the
permission validation) goes through here, so an added provider shows up everywhere.
"""

from __future__ import annotations

from typing import Any, Protocol

from agents import tools
from agents.tools import ToolEnv, ToolResult


class ToolProvider(Protocol):
    """A source of extra tools (e.g. the MCP servers)."""

    def names(self) -> list[str]: ...

    def schemas(self) -> list[dict[str, Any]]: ...  # chat-completions "tools" entries

    async def run(self, name: str, args: dict[str, Any], env: ToolEnv) -> ToolResult: ...


_providers: list[ToolProvider] = []


def register(provider: ToolProvider) -> None:
    if provider not in _providers:
        _providers.append(provider)


def unregister(provider: ToolProvider) -> None:
    if provider in _providers:
        _providers.remove(provider)


def names() -> list[str]:
    extra = [name for p in _providers for name in p.names()]
    return [*tools.BUILTIN_NAMES, *extra]


def schemas() -> list[dict[str, Any]]:
    return [*tools.builtin_schemas(), *(s for p in _providers for s in p.schemas())]


async def run(name: str, args: dict[str, Any], env: ToolEnv) -> ToolResult:
    if name in tools.BUILTIN_NAMES:
        return await tools.run_tool(name, args, env)
    for provider in _providers:
        if name in provider.names():
            return await provider.run(name, args, env)
    return ToolResult(f"Error: unknown tool {name!r}", is_error=True)
