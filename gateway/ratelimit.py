"""A limit on failed authentications per client address.

After ``GATEWAY_AUTH_FAIL_LIMIT`` wrong tokens within a window of
``GATEWAY_AUTH_FAIL_WINDOW`` seconds from one address, every request of that address that
presents a token is refused with 429 ``rate_limited`` (and ``Retry-After``) until the
window ends, and a socket is closed with 4029. The token is not even checked then, so a
guess cannot be confirmed during the block. Requests without a token are not counted: they
guess nothing.

The counts live in Django's cache: the default LocMemCache counts per process; with
``REDIS_URL`` the cache is Redis and every process shares the counts. Windows are fixed
(one cache key per address and window), so a key expires by itself.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
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

    default_detail = "Too many failed authentications from this address."

    def __init__(self, wait: int) -> None:
        super().__init__(wait=wait)  # DRF adds "Expected available in N seconds."


def check(client: str) -> None:
    """Raise RateLimited when ``client`` is blocked."""
    wait = retry_after(client)
    if wait is not None:
        raise RateLimited(wait)
