"""Bearer-token authentication for DRF views and for Channels sockets.

Both go through ``lookup_token`` (django-rest-knox's digest check), so a token is checked
the same way everywhere: at a request, at a socket's handshake and at each frame a socket
sends (a revoked token's socket can no longer act, even before it is closed).
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


class _KnoxCheck(TokenAuthentication):
    """knox's digest comparison, without its scan of every token of the user."""

    def _cleanup_token(self, auth_token: Any) -> bool:
        # knox's version scans every token of the user on each request; an expired token
        # only needs to go when it is the one presented (its deletion closes its sockets).
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


_knox = _KnoxCheck()


class Unauthorized(Exception):
    """The token presented is no longer valid (a socket's frame: close with 4001)."""


def lookup_token(token: bytes | str) -> tuple[AbstractBaseUser, ApiToken] | None:
    """The one check of a presented token, for REST and sockets alike: its active user
    and live row, or None (wrong, revoked, expired, or its user inactive).

    A cache in front of it must be emptied by ``gateway.revocation``'s signal, which
    fires whenever a token or a user stops being valid.
    """
    raw = token.encode("latin-1", "replace") if isinstance(token, str) else token
    # Tokens are short ASCII; knox decodes as UTF-8 and would crash (a 500) on other bytes.
    if not raw or len(raw) > 200 or not raw.isascii():
        return None
    try:
        return _knox.authenticate_credentials(raw)
    except exceptions.AuthenticationFailed:
        return None


class BearerTokenAuthentication(TokenAuthentication):
    """``Authorization: Bearer <token>``, hashed tokens from knox.

    Wrong tokens are counted per client address; past the limit a wrong token gets 429
    instead of 401 (``gateway.ratelimit``). A valid token is never refused: tokens are
    long random secrets, and one client behind a shared address must not lock out the
    others.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        if not get_authorization_header(request):
            return None  # nothing presented, nothing guessed: DRF answers 401
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            client = ratelimit.client_of_request(request)
            ratelimit.check(client)  # already past the limit: 429, not 401
            ratelimit.record_failure(client)
            raise

    def authenticate_credentials(self, token: bytes) -> tuple[Any, Any]:
        found = lookup_token(token)
        if found is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return found


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
    found = lookup_token(token)
    return found[0] if found else None


def socket_token(scope: dict[str, Any], token: str) -> tuple[ApiToken | None, int]:
    """A socket's token row (its ``user`` loaded), or None and the close code: 4001 for
    a missing or wrong token, 4029 for a wrong one from an address past the failure limit
    (wrong socket tokens count like wrong HTTP tokens; a valid one is never refused)."""
    found = lookup_token(token)
    if found is not None:
        return found[1], 0
    if not token:
        return None, CLOSE_UNAUTHORIZED
    client = ratelimit.client_of_scope(scope)
    if ratelimit.retry_after(client) is not None:
        return None, ratelimit.CLOSE_RATE_LIMITED
    ratelimit.record_failure(client)
    return None, CLOSE_UNAUTHORIZED


def create_token(user: AbstractBaseUser, name: str = "default",
                 expires_in: dt.timedelta | None = None) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the plaintext token (shown once)."""
    return ApiToken.objects.create(user=user, expiry=expires_in, name=name)
