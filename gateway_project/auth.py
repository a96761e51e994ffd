"""Bearer-token authentication for DRF views and for Channels sockets.

Both go through django-rest-knox, so a token is checked the same way everywhere.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from knox.auth import TokenAuthentication
from rest_framework import exceptions

from gateway_project.models import ApiToken


class BearerTokenAuthentication(TokenAuthentication):
    """``Authorization: Bearer <token>``, hashed tokens from knox."""

    def _cleanup_token(self, auth_token: Any) -> bool:
        # knox's version scans every token of the user on each request; an expired token
        # only needs to go when it is the one presented.
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


def user_for_token(token: str) -> AbstractBaseUser | None:
    """The active user a raw token belongs to, or None (wrong, revoked or expired)."""
    if not token or len(token) > 200:
        return None
    try:
        user, _ = BearerTokenAuthentication().authenticate_credentials(token.encode())
    except exceptions.AuthenticationFailed:
        return None
    return user


def create_token(user: AbstractBaseUser, name: str = "default",
                 expires_in: dt.timedelta | None = None) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the plaintext token (shown once)."""
    return ApiToken.objects.create(user=user, expiry=expires_in, name=name)
