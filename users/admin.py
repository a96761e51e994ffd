"""The Django admin's user page, with an action that makes one-time sign-in links."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from audit.services import record
from gateway.errors import GatewayError
from users.services import invite_link

User = get_user_model()


@admin.action(description="Make a one-time sign-in link (invite)")
def make_invite_links(modeladmin: Any, request: Any, queryset: Any) -> None:
    for user in queryset:
        try:
            link = invite_link(user, request.build_absolute_uri("/"))
        except GatewayError as exc:
            messages.error(request, f"{user}: {exc.message}")
            continue
        record("user", "invited", target=f"user {user}", data={"expires_at":
                                                               link["expires_at"]})
        messages.info(request, f"{user}: {link['url']} (works once, until "
                               f"{link['expires_at']})")


class GatewayUserAdmin(UserAdmin):
    actions = [*UserAdmin.actions, make_invite_links]
    list_display = ("username", "email", "is_staff", "is_active", "last_login")


admin.site.unregister(User)
admin.site.register(User, GatewayUserAdmin)
