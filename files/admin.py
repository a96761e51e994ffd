"""Per-user workspace quotas in the Django admin (an empty field is the default)."""

from django.contrib import admin

from files.models import WorkspaceQuota


@admin.register(WorkspaceQuota)
class WorkspaceQuotaAdmin(admin.ModelAdmin):
    list_display = ("user", "quota_bytes", "quota_files", "updated_at")
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)
