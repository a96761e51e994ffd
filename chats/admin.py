from django.contrib import admin

from chats.models import Chat, Compaction, Message, PendingApproval


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    fields = ("position", "role", "status", "compacted", "content", "tool_calls",
              "tool_call_id", "usage", "created_at")
    readonly_fields = fields
    ordering = ("position", "id")

    def has_add_permission(self, request, obj=None):
        return False


class CompactionInline(admin.TabularInline):
    model = Compaction
    extra = 0
    can_delete = False
    fields = ("created_at", "trigger", "model", "turns_removed", "tokens_before",
              "tokens_after", "first_position", "last_position", "summary")
    readonly_fields = fields
    ordering = ("id",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Chat)
class ChatAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "owner", "profile", "created_at", "turn_owner")
    list_filter = ("owner",)
    search_fields = ("title", "id", "owner__username")
    readonly_fields = ("id", "owner", "created_at", "updated_at", "turn_owner",
                       "turn_lease_until", "last_seq")
    inlines = [CompactionInline, MessageInline]


@admin.register(Compaction)
class CompactionAdmin(admin.ModelAdmin):
    """Compactions are a record of what happened: read-only."""

    list_display = ("id", "chat", "trigger", "created_at", "turns_removed", "tokens_before",
                    "tokens_after", "model")
    list_filter = ("trigger",)
    search_fields = ("chat__id", "chat__title", "summary")
    readonly_fields = ("chat", "created_at", "trigger", "model", "summary", "message_ids",
                       "first_position", "last_position", "tokens_before", "tokens_after",
                       "turns_removed")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PendingApproval)
class PendingApprovalAdmin(admin.ModelAdmin):
    """Approvals are made by the agent loop and answered from the chat's sockets; a row
    added, changed or deleted here would not reach the turn waiting on it (a verdict is
    accepted only for a call still pending, and travels through the event hub), so the
    admin only shows them."""

    list_display = ("tool_call_id", "tool_name", "chat", "verdict", "created_at", "expires_at")
    list_filter = ("verdict",)
    search_fields = ("tool_call_id", "tool_name", "chat__id")
    readonly_fields = ("chat", "tool_call_id", "tool_name", "arguments", "created_at",
                       "expires_at", "verdict", "resolved_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
