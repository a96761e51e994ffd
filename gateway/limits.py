"""The HTTP body limit (``GATEWAY_MAX_BODY_BYTES``), applied to every request up front.

Django checks the limit only when a view reads the body, and only against the
Content-Length header. A chunked body has none: Django let it through and DRF, seeing no
length, parsed an empty body, so the request silently ran without its data. Here a body
over the limit is refused with 413 ``request_too_large`` whatever the view and however it
was sent, and a chunked one within the limit gets its real length so DRF reads it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from gateway.errors import json_error
from gateway.middleware import HybridMiddleware


def refusal(request: HttpRequest) -> HttpResponse | None:
    """413 when the body is over the limit; a chunked body within it gets its length."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return None
    declared = request.META.get("CONTENT_LENGTH")
    if declared:
        size = int(declared) if declared.isdigit() else 0
    elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # The server has read the whole body before calling us (daphne and Django's ASGI
        # handler both do), so this reads memory or a spooled file, not the network.
        size = len(request.body)
        request.META["CONTENT_LENGTH"] = str(size)
    else:
        return None
    if size <= limit:
        return None
    return json_error("request_too_large",
                      f"The body is larger than the limit of {limit} bytes.", 413)


class BodyLimitMiddleware(HybridMiddleware):
    """Refuses bodies over GATEWAY_MAX_BODY_BYTES before any view runs."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        refused = refusal(request)
        return refused if refused is not None else self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        refused = refusal(request)
        return refused if refused is not None else await self.get_response(request)
