"""The HTTP body limit (``GATEWAY_MAX_BODY_BYTES``), applied to every request up front.

Django checks the limit only when a view reads the body, and only against the
Content-Length header. A chunked body has none: Django let it through and DRF, seeing no
length, parsed an empty body, so the request silently ran without its data. Here a body
over the limit is refused with 413 ``request_too_large`` whatever the view and however it
was sent, and a chunked one within the limit gets its real length so DRF reads it.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse

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
    # Imported here: gateway.errors imports DRF, whose settings import our JSON parser,
    # which imports this module.
    from gateway.errors import json_error

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


# --- the shape of JSON input ------------------------------------------------------------
# One check for every door JSON comes in by (REST bodies through ``JsonParser``, socket
# frames through ``chats.frames``): nesting bounded before parsing, and no string that
# cannot be stored or sent on (a NUL, which PostgreSQL text refuses, or a lone surrogate,
# which no UTF-8 encoder accepts: stored once, it broke every later read and turn).

MAX_JSON_DEPTH = 32
# Strings (with their escapes) and the brackets outside them, in one C-speed pass.
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


class BadJson(ValueError):
    """The JSON is refused: ``message`` says why, ``where`` is the path of a bad string."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def check_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise BadJson when ``text`` nests arrays/objects deeper than ``limit``; run before
    parsing, so a hostile body never reaches the parser's recursion."""
    if text.count("[") + text.count("{") <= limit:
        return  # cannot be deeper than the number of brackets it has
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                raise BadJson(f"JSON nested deeper than {limit} levels")
        elif token in "]}":
            depth -= 1


def _walk(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string of a parsed JSON value (keys too) with where it is."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            for key, child in item.items():
                yield f"{where}.{key}" if where else str(key), str(key)
                stack.append((child, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))


def check_text(value: Any) -> None:
    """Raise BadJson when a string of ``value`` holds a NUL or a lone surrogate."""
    for where, text in _walk(value, ""):
        if _BAD_CHARS.search(text):
            raise BadJson("text must not contain NUL characters or lone surrogates "
                          "(invalid Unicode)", where[:200] or "body")


def scrub(value: Any) -> Any:
    """``value`` with lone surrogates replaced by U+FFFD, for output: what was stored
    before the check above existed must still be readable and sendable. Returns the
    value itself when nothing needs replacing (the usual case: no copy)."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value) if _SURROGATES.search(value) else value
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v) for v in value]
    return value


_SURROGATES = re.compile("[\ud800-\udfff]")


def encodable(value: Any) -> Any:
    """``value`` unchanged when it encodes as UTF-8, else its ``scrub``bed copy."""
    for _, text in _walk(value, ""):
        if _SURROGATES.search(text):
            return scrub(value)
    return value
