"""Base of the gateway's own middlewares."""

from __future__ import annotations

from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest


class HybridMiddleware:
    """A middleware usable in both of Django's modes.

    Every middleware of the stack must be async capable: one sync-only middleware makes
    Django hop between the event loop and a thread around all the others. Subclasses
    implement ``__call__`` for the sync mode and ``_acall`` for the async one; ``__call__``
    starts with ``if self.is_async: return self._acall(request)``.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
