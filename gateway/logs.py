"""Structured logs: one JSON object per line, one line per request and per turn.

Secrets never reach a log line: request lines carry the path without its query string
(a socket's ``?token=`` lives there), both formatters remove any query string that other
loggers (daphne, Django, tracebacks) put in a line, and no header, body or key is logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from typing import Any

from django.http import HttpRequest, HttpResponse

from gateway.middleware import HybridMiddleware

request_log = logging.getLogger("gateway.request")

# Attributes every LogRecord has; anything else was passed in ``extra`` and is a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


# A query string after something that looks like a URL path, wherever a line has one:
# daphne's and Django's own messages and tracebacks may quote a request's URL.
_QUERY = re.compile(r"(/[^\s?\"'<>]*)\?[^\s\"'<>]*")
QUERY_REMOVED = "?[query removed]"


def without_query(text: str) -> str:
    """``text`` with every URL's query string replaced by a marker."""
    return _QUERY.sub(lambda m: m.group(1) + QUERY_REMOVED, text) if "?" in text else text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return without_query(self._format(record))

    def _format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """``LOG_FORMAT=plain``, for a person's terminal: the time, level and logger, then the
    line's fields as ``key=value`` (a request reads ``GET /api/chats 200 12.3 ms``)."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {key: value for key, value in vars(record).items()
                  if key not in _STANDARD and not key.startswith("_")}
        if {"method", "path", "status", "duration_ms"} <= set(fields):
            head = (f"{fields.pop('method')} {fields.pop('path')} {fields.pop('status')} "
                    f"{fields.pop('duration_ms')} ms")
        else:
            head = record.getMessage()
        tail = "".join(f" {key}={value}" for key, value in fields.items() if value is not None)
        line = f"{self.formatTime(record)} {record.levelname} {record.name} {head}{tail}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return without_query(line)


class RequestLogMiddleware(HybridMiddleware):
    """Logs ``method path status duration_ms user`` for every HTTP request."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        response = self.get_response(request)
        _log_request(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)
        _log_request(request, response, started)
        return response


def _log_request(request: HttpRequest, response: HttpResponse, started: float) -> None:
    # Only a user already loaded: touching request.user would query the session's user,
    # which is not allowed in the event loop (and is work the request did not need).
    user = getattr(request, "_cached_user", None)
    # DRF authenticates inside the view and leaves the user on the response's request.
    drf_request = getattr(response, "renderer_context", {}).get("request")
    if drf_request is not None:
        user = getattr(drf_request, "_user", user)
    request_log.info(
        "request", extra={
            "method": request.method, "path": request.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "user": getattr(user, "username", None) or None,
        })
