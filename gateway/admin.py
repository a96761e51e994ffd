from django.contrib import admin

from gateway.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("token_key", "name", "user", "created", "expiry")
    list_filter = ("user",)
    search_fields = ("name", "user__username", "token_key")
    readonly_fields = ("token_key", "digest", "created", "user")
    fields = ("name", "user", "token_key", "created", "expiry", "digest")

    def has_add_permission(self, request):  # tokens are shown once: issue them via the API
        return False
