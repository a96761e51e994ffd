"""An MCP server for the tests, written with the SDK (``MCPServer``).

``python mcp_echo_server.py`` serves stdio; ``--http PORT`` serves streamable HTTP at
``/mcp`` and, when ``EXPECTED_TOKEN`` is set, answers 401 to any request without
``Authorization: Bearer $EXPECTED_TOKEN``. ``--crash`` exits at once with a message on
stderr (a server that fails to start). ``GREETING`` (environment) changes ``greet``.
"""

from __future__ import annotations

import logging
import os
import sys
import time

if __name__ == "__main__" and "--crash" in sys.argv:
    print("echo server: cannot start (configuration missing)", file=sys.stderr)
    sys.exit(2)

from mcp.server.mcpserver import MCPServer  # noqa: E402

logging.basicConfig(level=logging.WARNING)  # plain tracebacks, not the SDK's rich ones
server = MCPServer("echo")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text}"


@server.tool()
def greet() -> str:
    """Say the greeting from the environment."""
    return os.environ.get("GREETING", "hello")


@server.tool()
def fail(reason: str) -> str:
    """Always fails (a tool error, not a broken server)."""
    raise ValueError(reason)


@server.tool()
def slow(seconds: float) -> str:
    """Sleep, then answer."""
    time.sleep(seconds)
    return "slept"


@server.tool()
def die() -> str:
    """End the server process at once (a crash)."""
    os._exit(3)


def serve_http(port: int) -> None:
    import uvicorn
    from starlette.responses import JSONResponse

    app = server.streamable_http_app()
    expected = os.environ.get("EXPECTED_TOKEN")

    async def guarded(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and expected:
            headers = dict(scope.get("headers", []))
            if headers.get(b"authorization") != f"Bearer {expected}".encode():
                await JSONResponse({"error": "unauthorized"}, status_code=401)(
                    scope, receive, send)
                return
        await app(scope, receive, send)

    uvicorn.run(guarded, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    if "--http" in sys.argv:
        serve_http(int(sys.argv[sys.argv.index("--http") + 1]))
    else:
        server.run()
