"""Bearer-token authentication for DRF views and for Channels sockets.

Both go through ``lookup_token`` (django-rest-knox's digest check), so a token is checked
the same way everywhere: at a request, at a socket's handshake and at each frame a socket
sends (a revoked token's socket can no longer act, even before it is closed).
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header
from rest_framework.request import Request

from gateway import ratelimit
from gateway.models import ApiToken
from gateway.shared_version import SharedVersion

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


# Tokens this process checked, by digest: the user and row knox found, when, and under
# which version of ``VERSION``, which every change to a token or a user through Django
# replaces (``forget``, connected to their signals in ``gateway.apps``). A process checks
# a token at every REST request and every socket frame; with the version unchanged it
# needs no query (embedded: a dictionary look and a ``stat``; with Redis: one GET).
# A change behind the signals' back (a bulk UPDATE, SQL) is seen within
# GATEWAY_AUTH_CACHE_SECONDS, after which a token is checked against the database again.
VERSION = SharedVersion("gateway:auth-version", "auth-version")
KNOWN_MAX = 10_000  # tokens kept; past it the process starts over
_known: dict[str, tuple[AbstractBaseUser, ApiToken, float]] = {}
_known_version = ""
_known_lock = threading.Lock()


def lookup_token(token: bytes | str) -> tuple[AbstractBaseUser, ApiToken] | None:
    """The one check of a presented token, for REST and sockets alike: its active user
    and live row, or None (wrong, revoked, expired, or its user inactive). The user and
    row are this call's own copies (a caller may change them)."""
    global _known_version
    raw = token.encode("latin-1", "replace") if isinstance(token, str) else token
    # Tokens are short ASCII; knox decodes as UTF-8 and would crash (a 500) on other bytes.
    if not raw or len(raw) > 200 or not raw.isascii():
        return None
    digest = hash_token(raw.decode("ascii"))
    # The version is read before the rows: a change committed after this read replaces
    # it, so what the query below finds is kept under a version already gone.
    version = VERSION.current()
    kept = _known.get(digest) if version == _known_version else None
    if kept is not None and time.monotonic() - kept[2] < settings.GATEWAY_AUTH_CACHE_SECONDS \
            and (kept[1].expiry is None or kept[1].expiry > timezone.now()):
        return _copied(kept[0], kept[1])
    checked_at = time.monotonic()
    try:
        found = _knox.authenticate_credentials(raw)  # an expired token is deleted here
    except exceptions.AuthenticationFailed:
        return None
    with _known_lock:
        if version != _known_version or len(_known) >= KNOWN_MAX:
            _known.clear()
            _known_version = version
        if settings.GATEWAY_AUTH_CACHE_SECONDS > 0:
            _known[digest] = (*_copied(*found), checked_at)
    return found


def _copied(user: AbstractBaseUser, row: ApiToken) -> tuple[AbstractBaseUser, ApiToken]:
    user, row = copy.copy(user), copy.copy(row)
    row._state.fields_cache["user"] = user
    return user, row


def forget(**kwargs: Any) -> None:
    """A token or a user changed (signal receiver): every process checks anew."""
    VERSION.bump()


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
