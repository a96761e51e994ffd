"""The OpenAPI description of responses (``/api/schema/``), shared by every app.

Views return plain dicts (``to_dict()``); each app describes its bodies with serializers
in its own ``serializers.py`` so that clients and schemathesis
(``tests/reliability/test_schemathesis.py``) can check every response against the schema.
``responses(...)`` adds the one JSON error body for each error status an operation can
answer. This module also describes the core app's own bodies (health, tokens).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers



class ErrorBody(serializers.Serializer):
    error = serializers.CharField(help_text="snake_case code, e.g. not_found")
    message = serializers.CharField(help_text="One sentence a person can act on.")
    fields = serializers.DictField(child=serializers.JSONField(), required=False,
                                   help_text="Messages per request field.")


ERRORS = {
    400: "Bad request: invalid fields, malformed JSON, or a state that refuses it "
         "(the code says which).",
    401: "Missing or wrong token (`unauthorized`).",
    403: "Only admins may do this (`forbidden`).",
    404: "No such resource, or it belongs to another user (`not_found`).",
    409: "Conflicts with the current state (the code says which).",
    413: "The body is larger than GATEWAY_MAX_BODY_BYTES (`request_too_large`).",
    415: "The body is not JSON (`unsupported_media_type`).",
    429: "Too many failed authentications from this address (`rate_limited`); see "
         "Retry-After.",
    502: "The model server failed (`upstream_error`).",
}


def responses(ok: dict[int, Any], *errors: int, body: bool = False,
              auth: bool = True) -> dict[int, Any]:
    """``ok`` (status: serializer, or None for no body) plus the error body for each
    status in ``errors``. An authenticated operation may also answer 401 and 429, one
    that reads a JSON body 400, 413 and 415."""
    statuses = set(errors)
    if auth:
        statuses |= {401, 429}
    if body:
        statuses |= {400, 413, 415}
    documented: dict[int, Any] = dict(ok)
    for status in sorted(statuses):
        documented[status] = OpenApiResponse(ErrorBody, description=ERRORS[status])
    return documented


class HealthSandbox(serializers.Serializer):
    tools = serializers.ChoiceField(
        choices=("sandboxed", "unavailable", "unsandboxed"),
        help_text="How tools run: in the sandbox; refused (the sandbox is required but "
                  "bubblewrap is unusable); unconfined (GATEWAY_UNSANDBOXED_TOOLS=true).")
    enabled = serializers.BooleanField()
    available = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True)
    network = serializers.BooleanField(help_text="slirp4netns is there for network_enabled")


class HealthBody(serializers.Serializer):
    status = serializers.ChoiceField(choices=("ok", "degraded"))
    version = serializers.CharField()
    active_turns = serializers.IntegerField(min_value=0)
    sandbox = HealthSandbox()
    mcp = serializers.DictField(child=serializers.JSONField(), required=False,
                                help_text="Status per enabled MCP server.")


class TokenBody(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField(allow_null=True)


class TokenListItem(TokenBody):
    current = serializers.BooleanField(help_text="The token of this request.")


class TokenListBody(serializers.Serializer):
    tokens = TokenListItem(many=True)


class TokenCreatedBody(TokenBody):
    token = serializers.CharField(help_text="The token itself; shown only this once.")
