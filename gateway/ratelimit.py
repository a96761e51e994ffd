"""Limits on failed authentication: wrong tokens per client address, and password
sign-in (through django-axes) per address and per user name, on one window.

Tokens: after ``GATEWAY_AUTH_FAIL_LIMIT`` wrong tokens within a window of
``GATEWAY_AUTH_FAIL_WINDOW`` seconds from one address, a wrong token from that address
gets 429 ``rate_limited`` (and ``Retry-After``) instead of 401 until the window ends, and
a socket with one is closed with 4029. A valid token is never refused: tokens are long
random secrets, so guessing one is hopeless anyway, and behind a proxy without trusted
proxy headers every client shares one address: one careless client must not lock out
everyone. Requests without a token are not counted: they guess nothing.

The counts live in Django's cache: the default LocMemCache counts per process; with
``REDIS_URL`` the cache is Redis and every process shares the counts. Windows are fixed
(one cache key per address and window), so a key expires by itself.

Passwords: django-axes counts failed sign-ins (settings ``AXES_*``, same limit and
window) and calls ``login_locked_out`` for the answer.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape
from rest_framework import exceptions

logger = logging.getLogger(__name__)

CLOSE_RATE_LIMITED = 4029  # a socket's "429"


def client_of_request(request: Any) -> str:
    """The client address of an HTTP request. ``serve`` runs daphne with --proxy-headers,
    which puts the first X-Forwarded-For entry here, from whoever sent it."""
    return request.META.get("REMOTE_ADDR") or "unknown"


def client_of_scope(scope: dict[str, Any]) -> str:
    """The client address of an ASGI connection."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _window() -> tuple[str, float]:
    """The current window's key suffix and the time it ends."""
    length = settings.GATEWAY_AUTH_FAIL_WINDOW
    index = int(time.time() // length)
    return str(index), (index + 1) * length


def _key(client: str, window: str) -> str:
    return f"gateway:authfail:{client}:{window}"


def retry_after(client: str) -> int | None:
    """Seconds until ``client`` may present a token again, or None when it may now."""
    limit = settings.GATEWAY_AUTH_FAIL_LIMIT
    if limit <= 0:
        return None
    window, ends = _window()
    try:
        failures = cache.get(_key(client, window), 0)
    except Exception:  # a broken cache must neither lock everyone out nor crash auth
        logger.warning("auth rate limit: the cache failed; not limiting", exc_info=True)
        return None
    if failures < limit:
        return None
    return max(1, math.ceil(ends - time.time()))


def record_failure(client: str) -> None:
    """Count one wrong token from ``client`` in the current window."""
    if settings.GATEWAY_AUTH_FAIL_LIMIT <= 0:
        return
    window, _ = _window()
    key = _key(client, window)
    try:
        cache.add(key, 0, timeout=settings.GATEWAY_AUTH_FAIL_WINDOW + 1)
        try:
            failures = cache.incr(key)
        except ValueError:  # expired between add and incr: a new window began
            cache.add(key, 1, timeout=settings.GATEWAY_AUTH_FAIL_WINDOW + 1)
            failures = 1
    except Exception:
        logger.warning("auth rate limit: the cache failed; failure not counted",
                       exc_info=True)
        return
    if failures == settings.GATEWAY_AUTH_FAIL_LIMIT:  # once per blocked window
        logger.warning("auth rate limit: %s failed authentications from %s; refusing its "
                       "tokens until the window ends", failures, client,
                       extra={"client": client})


class RateLimited(exceptions.Throttled):
    """Raised by the authentication class: rendered as 429 ``rate_limited`` with
    ``Retry-After`` by ``gateway.errors``."""

    default_detail = ("Too many failed authentications from this address; wrong tokens "
                      "are refused until the window ends.")

    def __init__(self, wait: int) -> None:
        super().__init__(wait=wait)  # DRF adds "Expected available in N seconds."


def check(client: str) -> None:
    """Raise RateLimited when ``client`` is past the limit (called for wrong tokens only)."""
    wait = retry_after(client)
    if wait is not None:
        raise RateLimited(wait)


def login_locked_out(request: HttpRequest, *args: Any) -> HttpResponse:
    """django-axes' ``AXES_LOCKOUT_CALLABLE``: the sign-in page's answer while an address
    or a user name is locked out. (axes passes ``(request, response, credentials)`` or,
    from its async middleware, ``(request, credentials)``; neither is needed here.)"""
    window = settings.GATEWAY_AUTH_FAIL_WINDOW
    message = (f"Too many failed sign-ins from this address or for this user name. "
               f"Try again in {window} seconds.")
    response = HttpResponse(
        "<!doctype html><meta charset=utf-8><title>Sign-in locked</title>"
        f"<h1>Sign-in locked</h1><p class=errornote>{escape(message)}</p>",
        status=429, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(window)
    return response


def axes_client_ip(request: Any) -> str | None:
    """The client's address for django-axes, which stores it in an IP address column:
    None (not the word ``unknown``) when there is none, e.g. a test client without one."""
    import ipaddress

    client = client_of_request(request)
    try:
        ipaddress.ip_address(client)
    except ValueError:
        return None
    return client
