from django.contrib import admin

from usage.models import Budget, ProfilePrice, UsageRecord


@admin.register(ProfilePrice)
class ProfilePriceAdmin(admin.ModelAdmin):
    list_display = ("profile", "input_per_million", "output_per_million", "currency")


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "period", "limit_tokens", "limit_cost")
    list_filter = ("period",)


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """The ledger is written by turns only."""

    list_display = ("created_at", "username", "profile_name", "model", "purpose",
                    "input_tokens", "output_tokens", "cost", "duration_ms")
    list_filter = ("purpose", "profile_name", "model")
    search_fields = ("username", "chat_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
