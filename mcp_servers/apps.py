from django.apps import AppConfig


class McpServersConfig(AppConfig):
    name = "mcp_servers"
    verbose_name = "MCP servers"

    def ready(self) -> None:
        from gateway import hooks

        hooks.add_health_part(health_part)


def health_part() -> tuple[dict, bool]:
    """This process's MCP servers, only when some are enabled."""
    from mcp_servers.runtime import statuses

    mcp = statuses()
    if not mcp:
        return {}, False
    # A server that failed is degraded until it connects again, also while it retries.
    return {"mcp": mcp}, any(server["state"] in ("error", "restarting")
                             for server in mcp.values())
