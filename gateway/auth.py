"""Bearer-token authentication for DRF views and for Channels sockets.

Both go through django-rest-knox, so a token is checked the same way everywhere.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header
from rest_framework.request import Request

from gateway import ratelimit
from gateway.models import ApiToken

CLOSE_UNAUTHORIZED = 4001  # a socket's "401"


class BearerTokenAuthentication(TokenAuthentication):
    """``Authorization: Bearer <token>``, hashed tokens from knox.

    Wrong tokens are counted per client address; past the limit the address gets 429
    before its token is looked at (``gateway.ratelimit``).
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        if not get_authorization_header(request):
            return None  # nothing presented, nothing guessed: DRF answers 401
        client = ratelimit.client_of_request(request)
        ratelimit.check(client)
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            ratelimit.record_failure(client)
            raise

    def authenticate_credentials(self, token: bytes) -> tuple[Any, Any]:
        # Tokens are ASCII; knox decodes the header as UTF-8 and would crash (a 500) on
        # other bytes, so refuse them as any wrong token.
        if not token.isascii():
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(token)

    def _cleanup_token(self, auth_token: Any) -> bool:
        # knox's version scans every token of the user on each request; an expired token
        # only needs to go when it is the one presented.
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Declares the bearer token in the OpenAPI schema, so /api/docs/ can send one (the
    knox extension of drf-spectacular matches knox's own class only)."""

    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(header_name="Authorization",
                                                   token_prefix="Bearer")


def user_for_token(token: str) -> AbstractBaseUser | None:
    """The active user a raw token belongs to, or None (wrong, revoked or expired)."""
    if not token or len(token) > 200:
        return None
    try:
        user, _ = BearerTokenAuthentication().authenticate_credentials(token.encode())
    except exceptions.AuthenticationFailed:
        return None
    return user


def socket_user(scope: dict[str, Any], token: str) -> tuple[AbstractBaseUser | None, int]:
    """A socket's user, or None and the close code: 4001 for a missing or wrong token
    (a wrong one counts like a wrong HTTP token), 4029 while the address is blocked."""
    client = ratelimit.client_of_scope(scope)
    if token and ratelimit.retry_after(client) is not None:
        return None, ratelimit.CLOSE_RATE_LIMITED
    user = user_for_token(token)
    if user is None:
        if token:
            ratelimit.record_failure(client)
        return None, CLOSE_UNAUTHORIZED
    return user, 0


def create_token(user: AbstractBaseUser, name: str = "default",
                 expires_in: dt.timedelta | None = None) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the plaintext token (shown once)."""
    return ApiToken.objects.create(user=user, expiry=expires_in, name=name)
