"""One error vocabulary for the whole gateway.

``GatewayError(code, message, status)`` may be raised anywhere. REST renders it (and every
DRF or Django error) as ``{"error", "message", "fields"?}`` here; the WebSocket consumer
renders it as ``agent.error {"code", "message"}``. No traceback reaches a client.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)


class GatewayError(Exception):
    """An error a client can act on: a snake_case code, one sentence, an HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400,
                 fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


def not_found(what: str = "resource") -> GatewayError:
    return GatewayError("not_found", f"No such {what}.", 404)


def _field_messages(detail: Any) -> dict[str, Any]:
    """DRF's nested ValidationError detail as plain strings per field."""
    if isinstance(detail, dict):
        return {str(key): _field_messages(value) for key, value in detail.items()}
    if isinstance(detail, list):
        flat = [_field_messages(item) for item in detail]
        if all(isinstance(item, str) for item in flat):
            return " ".join(flat)  # type: ignore[return-value]
        return flat  # type: ignore[return-value]
    return str(detail)  # type: ignore[return-value]


def _from_drf(exc: drf.APIException) -> GatewayError:
    if isinstance(exc, drf.ValidationError):
        fields = _field_messages(exc.detail)
        if not isinstance(fields, dict):
            return GatewayError("invalid_request", str(fields), 400)
        summary = "; ".join(f"{key}: {value}" for key, value in fields.items())
        return GatewayError("invalid_request", f"Invalid request: {summary}", 400, fields)
    if isinstance(exc, drf.ParseError):
        return GatewayError("malformed_json", f"The body is not valid JSON: {exc.detail}", 400)
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        return GatewayError("unauthorized",
                            "Send a valid token as 'Authorization: Bearer <token>'.", 401)
    if isinstance(exc, drf.PermissionDenied):
        return GatewayError("forbidden", "Only admins may do this.", 403)
    if isinstance(exc, drf.NotFound):
        return GatewayError("not_found", str(exc.detail), 404)
    if isinstance(exc, drf.MethodNotAllowed):
        return GatewayError("method_not_allowed", str(exc.detail), 405)
    if isinstance(exc, drf.UnsupportedMediaType):
        return GatewayError("unsupported_media_type",
                            "Send the body as JSON with 'Content-Type: application/json'.", 415)
    if isinstance(exc, drf.Throttled):
        return GatewayError("rate_limited", str(exc.detail), 429)
    return GatewayError(exc.default_code or "error", str(exc.detail), exc.status_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's exception handler: every known error becomes the one JSON body."""
    if isinstance(exc, Http404):
        err = not_found()
    elif isinstance(exc, DjangoPermissionDenied):
        err = GatewayError("forbidden", "Only admins may do this.", 403)
    elif isinstance(exc, GatewayError):
        err = exc
    elif isinstance(exc, drf.APIException):
        err = _from_drf(exc)
    else:
        return None  # unexpected: Django's 500 handler answers (JSON, no traceback)
    set_rollback()
    headers = {}
    if err.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, drf.Throttled) and exc.wait:
        headers["Retry-After"] = str(int(exc.wait) + 1)
    response = Response(err.to_dict(), status=err.status, headers=headers)
    if err.status in (502, 503, 504):
        # A service we depend on (a provider, the database) failed and the answer says so:
        # a warning, not Django's ERROR line that reads like a crash of the gateway.
        logger.warning("%s %s answered %d %s: %s", context["request"].method,
                       context["request"].path, err.status, err.code, err.message)
        response._has_been_logged = True  # noqa: SLF001 - Django's own flag (log_response)
    return response


def json_error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


# Django's own handlers, for what never reaches a DRF view (unknown URLs, crashes, bad
# hosts, CSRF). The dashboard and admin keep Django's HTML pages; the API never does.
# Paths whose every answer is JSON: the API, the socket endpoint (a plain HTTP request to
# it), health, and the dashboard's JSON routes (``/dashboard/token``, ``/dashboard/me``).
JSON_PREFIXES = ("/api/", "/ws/", "/dashboard/")
JSON_PATHS = ("/api", "/ws", "/health", "/dashboard")


def wants_json(path: str) -> bool:
    return path.startswith(JSON_PREFIXES) or path in JSON_PATHS


def _wants_html(request: HttpRequest) -> bool:
    return not wants_json(request.path)


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # Django reports an oversized body as a "suspicious" 400; say what the client can fix.
    if isinstance(exception, RequestDataTooBig):
        return json_error("request_too_large", "The body is larger than the limit of "
                          f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.", 413)
    return json_error("bad_request", "The request could not be understood.", 400)


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_html(request):
        from django.views.defaults import permission_denied
        return permission_denied(request, exception or DjangoPermissionDenied())
    return json_error("forbidden", "You may not do this.", 403)


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_html(request):
        from django.views.defaults import page_not_found
        return page_not_found(request, exception or Http404())
    return json_error("not_found", f"No such endpoint: {request.method} {request.path}", 404)


def handler500(request: HttpRequest) -> HttpResponse:
    return json_error("internal_error",
                      "The gateway hit an unexpected error; it was logged. Try again.", 500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: JSON on the JSON paths, Django's page on the HTML ones."""
    if _wants_html(request):
        from django.views.csrf import csrf_failure as html_failure
        return html_failure(request, reason)
    return json_error("csrf_failed", f"CSRF check failed: {reason}", 403)


def method_not_allowed(request: HttpRequest, allowed: list[str]) -> HttpResponse:
    """405 with the JSON body and ``Allow``, for views outside DRF."""
    response = json_error("method_not_allowed",
                          f"Method {request.method} is not allowed here; use "
                          f"{', '.join(allowed)}.", 405)
    response["Allow"] = ", ".join(allowed)
    return response
