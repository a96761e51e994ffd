from django.contrib import admin

from permissions.models import PermissionPolicy, SandboxConfig


class SingletonAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return not self.model.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PermissionPolicy)
class PermissionPolicyAdmin(SingletonAdmin):
    list_display = ("mode", "tool_overrides", "updated_at")


@admin.register(SandboxConfig)
class SandboxConfigAdmin(SingletonAdmin):
    list_display = ("enabled", "memory_limit_mb", "cpu_seconds", "timeout_seconds",
                    "network_enabled", "workspace_mode")
