"""/api/mcp/servers (members read, admins write), the Django admin page, and the MCP part
of /health."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from mcp_servers import runtime
from mcp_servers.models import McpServer

pytestmark = pytest.mark.django_db

STDIO = {"name": "fs", "transport": "stdio", "command": "npx",
         "args": ["-y", "@modelcontextprotocol/server-filesystem", "/srv/data"],
         "env": {"LOG": "debug", "API_KEY": "${FS_API_KEY}", "SECRET": "hunter2"}}


def post(actor: Any, body: dict[str, Any]) -> Any:
    return actor.client.post("/api/mcp/servers", body, format="json")


def test_an_admin_adds_a_stdio_server(admin: Any) -> None:
    response = post(admin, STDIO)

    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ("name", "transport", "enabled", "tool_prefix", "command",
                                 "args", "env", "url", "bearer_token_env")} == {
        "name": "fs", "transport": "stdio", "enabled": True, "tool_prefix": "fs",
        "command": "npx", "args": STDIO["args"], "env": STDIO["env"], "url": "",
        "bearer_token_env": ""}
    assert body["status"]["state"] == "starting"  # no process has connected it yet
    assert McpServer.objects.get(name="fs").to_config().prefix == "fs"


def test_an_admin_adds_an_http_server_with_a_token_variable(admin: Any) -> None:
    response = post(admin, {"name": "search", "transport": "http",
                            "url": "https://mcp.example.com/mcp",
                            "bearer_token_env": "SEARCH_MCP_TOKEN", "tool_prefix": "web",
                            "enabled": False})

    assert response.status_code == 201
    body = response.json()
    assert body["tool_prefix"] == "web" and body["bearer_token_env"] == "SEARCH_MCP_TOKEN"
    assert body["status"]["state"] == "disabled"


def test_members_list_servers_without_literal_env_values(admin: Any, alice: Any) -> None:
    post(admin, STDIO)

    listed = alice.client.get("/api/mcp/servers").json()["servers"]

    assert [s["name"] for s in listed] == ["fs"]
    assert listed[0]["env"] == {"LOG": "***", "API_KEY": "${FS_API_KEY}", "SECRET": "***"}
    assert admin.client.get("/api/mcp/servers/fs").json()["env"]["SECRET"] == "hunter2"


def test_it_validates_roles(alice: Any, anon: APIClient, admin: Any) -> None:
    assert post(alice, STDIO).status_code == 403
    post(admin, STDIO)
    assert alice.client.delete("/api/mcp/servers/fs").status_code == 403
    assert anon.get("/api/mcp/servers").status_code == 401
    assert McpServer.objects.count() == 1


@pytest.mark.parametrize("changes, field", [
    ({"command": ""}, "command"),
    ({"transport": "http", "command": "", "url": "ftp://x"}, "url"),
    ({"transport": "http", "url": "https://x/mcp", "bearer_token_env": "sk-live-abcdef"},
     "bearer_token_env"),
    ({"name": "has space"}, "name"),
    ({"name": "a__b", "tool_prefix": "bad prefix"}, "tool_prefix"),
    ({"transport": "sse"}, "transport"),
    ({"env": {"1BAD": "x"}}, "env"),
    ({"args": "not a list"}, "args"),
    ({"surprise": 1}, "surprise"),
])
def test_it_validates_the_configuration(admin: Any, changes: dict[str, Any],
                                        field: str) -> None:
    response = post(admin, {**STDIO, **changes})

    assert response.status_code == 400, response.json()
    assert response.json()["error"] == "invalid_request"
    assert field in response.json()["fields"]
    assert not McpServer.objects.exists()


def test_names_and_tool_prefixes_are_unique(admin: Any) -> None:
    post(admin, STDIO)

    again = post(admin, STDIO)
    clash = post(admin, {**STDIO, "name": "files", "tool_prefix": "fs"})

    assert again.status_code == 409 and again.json()["error"] == "mcp_server_exists"
    assert clash.status_code == 400 and "tool_prefix" in clash.json()["fields"]


def test_an_admin_deletes_a_server(admin: Any) -> None:
    post(admin, STDIO)

    assert admin.client.delete("/api/mcp/servers/fs").status_code == 204
    assert admin.client.delete("/api/mcp/servers/fs").status_code == 404
    assert admin.client.get("/api/mcp/servers/fs").json()["error"] == "not_found"


def test_the_admin_page_lists_servers_with_their_status(admin: Any) -> None:
    post(admin, STDIO)
    client = APIClient()
    client.force_login(admin.user)

    page = client.get("/admin/mcp_servers/mcpserver/")
    form = client.get(f"/admin/mcp_servers/mcpserver/{McpServer.objects.get().pk}/change/")

    assert page.status_code == 200 and b"starting" in page.content
    assert form.status_code == 200 and b"bearer_token_env" in form.content


class StubManager:
    def __init__(self, statuses: dict[str, dict[str, Any]]) -> None:
        self._statuses = statuses

    def statuses(self) -> dict[str, dict[str, Any]]:
        return self._statuses


def test_health_has_no_mcp_part_without_servers(anon: APIClient) -> None:
    assert "mcp" not in anon.get("/health").json()


def test_health_reports_each_enabled_server(anon: APIClient, admin: Any,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    post(admin, STDIO)
    post(admin, {**STDIO, "name": "db"})
    post(admin, {**STDIO, "name": "off", "enabled": False})
    failing = {"state": "error", "message": "Connection closed", "tools": 0, "restarts": 2,
               "retry_in": 3.0}
    monkeypatch.setattr(runtime, "_manager", StubManager({
        "fs": {"state": "connected", "message": None, "tools": 11, "restarts": 0},
        "db": failing}))

    body = anon.get("/health").json()

    assert body["status"] == "degraded"
    assert body["mcp"] == {"db": failing, "fs": {"state": "connected", "message": None,
                                                 "tools": 11, "restarts": 0}}


def test_health_is_ok_while_servers_are_connected_or_starting(
        anon: APIClient, admin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    post(admin, STDIO)
    post(admin, {**STDIO, "name": "db"})
    monkeypatch.setattr(runtime, "_manager", StubManager({
        "fs": {"state": "connected", "message": None, "tools": 1, "restarts": 0}}))

    body = anon.get("/health").json()

    assert body["status"] == "ok" and body["mcp"]["db"]["state"] == "starting"
