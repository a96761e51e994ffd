from typing import Any

from django.contrib import admin

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read only: the audit log is never edited, not even by a superuser."""

    list_display = ("at", "kind", "action", "actor_name", "target", "client")
    list_filter = ("kind", "action")
    search_fields = ("actor_name", "target", "chat_id")
    date_hierarchy = "at"

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
