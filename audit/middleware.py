"""Keeps the request being served where ``audit.services.record`` finds it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from audit.services import current_request
from gateway.middleware import HybridMiddleware


class AuditContextMiddleware(HybridMiddleware):
    """Sync and async capable, so it adds no thread hop to the request path. The context
    variable reaches the view's thread: asgiref copies the context into it."""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.is_async:
            return self._acall(request)
        token = current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            current_request.reset(token)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        token = current_request.set(request)
        try:
            return await self.get_response(request)
        finally:
            current_request.reset(token)
