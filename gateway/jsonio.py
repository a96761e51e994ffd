"""JSON in and out of the REST API: DRF's parser and renderer with the gateway's bounds.

In: the body's nesting is bounded before it is parsed (a deeply nested body made the
parser recurse until a 500), and strings that could not be stored or sent on (NUL, lone
surrogates) are refused with 400, like every other bad field. Out: a lone surrogate
stored before that check existed is replaced by U+FFFD instead of failing the response.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from rest_framework import parsers, renderers

from gateway import limits


class JsonParser(parsers.JSONParser):
    """``application/json`` bodies, bounded in depth and checked for invalid text."""

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        from gateway.errors import GatewayError  # here: DRF loads this module from errors

        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GatewayError("malformed_json", "The body is not valid JSON: it is not "
                               "UTF-8.") from None
        return checked_json(text)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def checked_json(text: str, refused: str = "invalid_request",
                 malformed: str = "malformed_json", what: str = "body") -> Any:
    """``text`` parsed and checked (``gateway.limits``), or a 400 GatewayError: code
    ``malformed`` when it is not JSON, ``refused`` when its shape or text is not allowed.
    """
    from gateway.errors import GatewayError

    try:
        limits.check_depth(text)
        value = json.loads(text, parse_constant=_no_constants)
        limits.check_text(value)
    except limits.BadJson as exc:
        where = f" (at {exc.where})" if exc.where else ""
        raise GatewayError(refused, f"The {what} is refused: {exc.message}{where}.", 400,
                           {exc.where: exc.message} if exc.where else None) from None
    except (ValueError, RecursionError) as exc:
        # RecursionError only if the depth check was fooled by malformed JSON.
        raise GatewayError(malformed, f"The {what} is not valid JSON: {exc}"[:300],
                           400) from None
    return value


class JsonRenderer(renderers.JSONRenderer):
    """DRF's renderer; a body with a lone surrogate (old data) is sent with U+FFFD."""

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: Mapping[str, Any] | None = None) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return super().render(limits.scrub(data), accepted_media_type,
                                  renderer_context)
