"""agents.mcp: the manager against real MCP servers (tests/agents/mcp_echo_server.py, run
over stdio and streamable HTTP), without Django: connect, tools, calls, failures,
restarts with backoff, timeouts, configuration changes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import pytest

from agents import toolbox
from agents.mcp import ManagerOptions, McpManager, ServerConfig, result_text, tool_name
from agents.sandbox import SandboxPolicy
from agents.tools import ToolEnv

SERVER = Path(__file__).with_name("mcp_echo_server.py")
FAST = ManagerOptions(call_timeout=5, connect_timeout=30, probe_interval=0.2,
                      backoff_initial=0.1, backoff_max=0.4)


def stdio(name: str = "echo", *args: str, **fields: Any) -> ServerConfig:
    return ServerConfig(name=name, transport="stdio", command=sys.executable,
                        args=(str(SERVER), *args), **fields)


def env(tmp_path: Path) -> ToolEnv:
    return ToolEnv(tmp_path, SandboxPolicy(), bash_timeout=5, output_limit=10_000)


Make = Callable[..., Awaitable[tuple[McpManager, list[ServerConfig]]]]


@pytest.fixture
async def manager() -> AsyncIterator[Make]:
    """Start a manager on the given configs; the returned list may be changed in place."""
    made: list[McpManager] = []

    async def make(*configs: ServerConfig,
                   options: ManagerOptions = FAST) -> tuple[McpManager, list[ServerConfig]]:
        current = list(configs)

        async def loader() -> list[ServerConfig]:
            return list(current)

        m = McpManager(options, loader)
        made.append(m)
        await m.refresh()
        return m, current

    yield make
    for m in made:
        await m.close()


async def eventually(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_a_stdio_server_connects_and_its_tools_are_prefixed(manager: Make,
                                                                  tmp_path: Path) -> None:
    m, _ = await manager(stdio())

    assert m.statuses()["echo"] == {"state": "connected", "message": None, "tools": 5,
                                    "restarts": 0}
    assert sorted(m.names()) == ["echo__die", "echo__echo", "echo__fail", "echo__greet",
                                 "echo__slow"]
    schema = next(s for s in m.schemas() if s["function"]["name"] == "echo__echo")
    assert schema["type"] == "function"
    assert schema["function"]["description"] == "[MCP server echo] Echo the text back."
    assert schema["function"]["parameters"]["properties"]["text"]["type"] == "string"
    result = await m.run("echo__echo", {"text": "hi"}, env(tmp_path))
    assert (result.content, result.is_error, result.failure) == ("echo: hi", False, None)
    # A tool's own error is an error result, not a failure of the server.
    result = await m.run("echo__fail", {"reason": "nope"}, env(tmp_path))
    assert result.is_error is True and result.failure is None
    assert "fail" in result.content
    # Registered, its tools are everywhere tools are listed and run.
    toolbox.register(m)
    try:
        assert "echo__echo" in toolbox.names()
        assert "echo__echo" in [s["function"]["name"] for s in toolbox.schemas()]
        assert (await toolbox.run("echo__echo", {"text": "t"}, env(tmp_path))).content \
            == "echo: t"
    finally:
        toolbox.unregister(m)
    assert "echo__echo" not in toolbox.names()


def test_tool_names_are_made_safe_for_function_calling() -> None:
    assert tool_name("my.server", "do it/now") == "my_server__do_it_now"
    assert len(tool_name("p", "x" * 100)) == 64


async def test_environment_references_are_read_from_the_gateways_environment(
        manager: Make, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MCP_GREETING", "bonjour")
    m, _ = await manager(stdio(env=(("GREETING", "${TEST_MCP_GREETING}"),)),
                         stdio("plain", tool_prefix="plain", env=(("GREETING", "hi"),)))

    assert (await m.run("echo__greet", {}, env(tmp_path))).content == "bonjour"
    assert (await m.run("plain__greet", {}, env(tmp_path))).content == "hi"


async def test_a_missing_environment_variable_is_reported(manager: Make) -> None:
    m, _ = await manager(stdio(env=(("GREETING", "${TEST_MCP_NOT_SET_ANYWHERE}"),)))

    status = m.statuses()["echo"]
    assert status["state"] in ("error", "restarting")
    assert "TEST_MCP_NOT_SET_ANYWHERE" in status["message"]


async def test_a_server_that_cannot_start_is_reported_and_others_still_work(
        manager: Make, tmp_path: Path) -> None:
    m, _ = await manager(stdio(), stdio("broken", "--crash"),
                         ServerConfig("missing", "stdio", command="/no/such/mcp-server"))

    statuses = m.statuses()
    assert statuses["echo"]["state"] == "connected"
    assert statuses["broken"]["state"] in ("error", "restarting")
    assert "cannot start (configuration missing)" in statuses["broken"]["message"]
    assert "/no/such/mcp-server" in statuses["missing"]["message"]
    assert not any(n.startswith(("broken__", "missing__")) for n in m.names())
    assert (await m.run("echo__echo", {"text": "ok"}, env(tmp_path))).content == "echo: ok"
    # It keeps being retried, with a growing delay.
    await eventually(lambda: m.statuses()["broken"]["restarts"] >= 3)


async def test_a_server_that_does_not_answer_is_given_up_after_the_connect_timeout(
        manager: Make) -> None:
    impatient = ManagerOptions(call_timeout=5, connect_timeout=0.5, probe_interval=5,
                               backoff_initial=30)
    started = time.monotonic()
    m, _ = await manager(ServerConfig("mute", "stdio", command="sleep", args=("30",)),
                         options=impatient)

    assert time.monotonic() - started < 5
    status = m.statuses()["mute"]
    assert status["state"] == "error"
    assert status["message"] == "no answer within 0.5 s of starting"


async def test_a_server_that_dies_fails_the_call_and_is_restarted(manager: Make,
                                                                  tmp_path: Path) -> None:
    m, _ = await manager(stdio())

    result = await m.run("echo__die", {}, env(tmp_path))

    assert result.is_error is True
    assert result.failure and "echo" in result.failure and "closed" in result.failure
    await eventually(lambda: m.statuses()["echo"]["restarts"] >= 1
                     and m.statuses()["echo"]["state"] == "connected")
    again = await m.run("echo__echo", {"text": "back"}, env(tmp_path))
    assert again.content == "echo: back"


async def test_a_call_to_a_server_that_is_down_says_so(manager: Make,
                                                       tmp_path: Path) -> None:
    slow_restart = ManagerOptions(call_timeout=5, connect_timeout=30, probe_interval=0.2,
                                  backoff_initial=30, backoff_max=30)
    m, _ = await manager(stdio(), options=slow_restart)
    await m.run("echo__die", {}, env(tmp_path))
    await eventually(lambda: m.statuses()["echo"]["state"] == "error")

    # Its tools are no longer offered, but a call that was already decided gets a clear
    # failure rather than "unknown tool".
    assert "echo__echo" not in [s["function"]["name"] for s in m.schemas()]
    result = await m.run("echo__echo", {"text": "x"}, env(tmp_path))
    assert result.is_error and result.failure
    assert "not connected" in result.failure
    assert m.statuses()["echo"]["retry_in"] > 0


async def test_calls_time_out(manager: Make, tmp_path: Path) -> None:
    quick = ManagerOptions(call_timeout=0.5, connect_timeout=30, probe_interval=5,
                           backoff_initial=0.1)
    m, _ = await manager(stdio(), options=quick)

    started = time.monotonic()
    result = await m.run("echo__slow", {"seconds": 5}, env(tmp_path))

    assert time.monotonic() - started < 3
    assert result.is_error and result.failure and "no result within 0.5 s" in result.failure


async def test_configuration_changes_start_restart_and_stop_servers(manager: Make) -> None:
    m, configs = await manager(stdio())
    assert {n.split("__")[0] for n in m.names()} == {"echo"}

    configs[:] = [stdio(tool_prefix="renamed"), stdio("second", tool_prefix="two")]
    await m.refresh()
    assert sorted({n.split("__")[0] for n in m.names()}) == ["renamed", "two"]

    configs[:] = []
    await m.refresh()
    assert m.names() == [] and m.statuses() == {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_server() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port)],
                            env={**os.environ, "EXPECTED_TOKEN": "s3cret"})
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("the HTTP MCP server did not start")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    proc.kill()
    proc.wait(10)


async def test_a_streamable_http_server_gets_the_bearer_token_from_the_environment(
        manager: Make, http_server: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MCP_TOKEN", "s3cret")
    monkeypatch.setenv("TEST_MCP_WRONG_TOKEN", "guess")
    m, _ = await manager(
        ServerConfig("web", "http", url=http_server, bearer_token_env="TEST_MCP_TOKEN"),
        ServerConfig("nokey", "http", url=http_server, bearer_token_env="TEST_MCP_WRONG_TOKEN"),
        ServerConfig("unset", "http", url=http_server, bearer_token_env="TEST_MCP_UNSET"))

    statuses = m.statuses()
    assert statuses["web"]["state"] == "connected"
    assert (await m.run("web__echo", {"text": "over http"}, env(tmp_path))).content \
        == "echo: over http"
    assert statuses["nokey"]["state"] in ("error", "restarting")
    assert "TEST_MCP_UNSET" in statuses["unset"]["message"]


def test_result_text_describes_what_is_not_text() -> None:
    import mcp_types

    result = mcp_types.CallToolResult(content=[
        mcp_types.TextContent(type="text", text="line"),
        mcp_types.ImageContent(type="image", data="aGVsbG8=", mime_type="image/png"),
        mcp_types.ResourceLink(type="resource_link", name="r", uri="file:///x"),
    ])
    assert result_text(result, 1000) == "line\n[image image/png, 6 bytes]\n[resource file:///x]"
    structured = mcp_types.CallToolResult(content=[], structured_content={"n": 1})
    assert result_text(structured, 1000) == '{"n": 1}'
    assert result_text(mcp_types.CallToolResult(content=[
        mcp_types.TextContent(type="text", text="x" * 50)]), 10).startswith("x" * 10 + "\n[")
