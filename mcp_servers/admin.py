from typing import Any

from django.contrib import admin

from mcp_servers import runtime
from mcp_servers.models import McpServer


@admin.register(McpServer)
class McpServerAdmin(admin.ModelAdmin):
    list_display = ("name", "transport", "enabled", "tool_prefix", "status")
    list_filter = ("transport", "enabled")
    readonly_fields = ("status", "created_at", "updated_at")
    fields = ("name", "transport", "enabled", "tool_prefix", "command", "args", "env", "url",
              "bearer_token_env", "status", "created_at", "updated_at")

    @admin.display(description="status (this process)")
    def status(self, obj: McpServer) -> str:
        if not obj.pk or not obj.enabled:
            return "disabled" if obj.pk else "-"
        state: dict[str, Any] = runtime.statuses().get(obj.name) or {}
        text = state.get("state", "starting")
        if state.get("state") == "connected":
            text += f" ({state['tools']} tools)"
        if state.get("message"):
            text += f": {state['message']}"
        return text
