"""API tokens in the Django admin: list, revoke, and create (the token is shown once,
in the message after saving; only its digest is stored)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils import timezone

from gateway.auth import create_token
from gateway.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("token_key", "name", "user", "created", "expiry")
    list_filter = ("user",)
    search_fields = ("name", "user__username", "token_key")
    fields = ("name", "user", "token_key", "created", "expiry", "digest")
    add_fields = ("name", "user", "expiry")

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        return self.add_fields if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        return () if obj is None else ("token_key", "digest", "created", "user")

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        expires_in = obj.expiry - timezone.now() if obj.expiry else None
        row, token = create_token(obj.user, obj.name, expires_in)
        obj.__dict__.update({k: v for k, v in row.__dict__.items() if k != "_state"})
        obj._state.adding = False
        messages.warning(request, f"The new token (shown only this once; copy it now): "
                                  f"{token}")
