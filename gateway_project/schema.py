"""What the REST API returns, for the OpenAPI schema (``/api/schema/``).

The views return plain dicts (``to_dict()``); these serializers only describe them, so
that clients and schemathesis (``tests/reliability/test_schemathesis.py``) can check every
response against the schema. ``responses(...)`` adds the one JSON error body for each
error status an operation can answer.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from chats.models import Message
from permissions.models import LEVELS, MODES, WORKSPACE_MODES
from profiles.models import PROVIDERS


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


# ----------------------------------------------------------------------------- gateway

class HealthSandbox(serializers.Serializer):
    enabled = serializers.BooleanField()
    available = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True)


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


# ------------------------------------------------------------------------------- chats

class ChatBody(serializers.Serializer):
    chat_id = serializers.UUIDField()
    title = serializers.CharField(allow_blank=True)
    profile = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ChatListBody(serializers.Serializer):
    chats = ChatBody(many=True)
    next = serializers.CharField(allow_null=True, help_text="Cursor of the next page.")


class MessageBody(serializers.Serializer):
    id = serializers.IntegerField()
    position = serializers.IntegerField(allow_null=True)
    role = serializers.ChoiceField(choices=Message.ROLES)
    content = serializers.JSONField(allow_null=True,
                                    help_text="A string or a list of content blocks.")
    status = serializers.ChoiceField(choices=Message.STATUSES)
    compacted = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    tool_calls = serializers.ListField(child=serializers.JSONField(), required=False)
    tool_call_id = serializers.CharField(required=False, allow_blank=True)
    tool_name = serializers.CharField(required=False, allow_blank=True)
    is_error = serializers.BooleanField(required=False)
    usage = serializers.DictField(child=serializers.JSONField(), required=False)
    model = serializers.CharField(required=False)


class CompactionBody(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    trigger = serializers.CharField()
    model = serializers.CharField(allow_blank=True)
    summary = serializers.CharField(allow_blank=True)
    message_ids = serializers.ListField(child=serializers.IntegerField())
    positions = serializers.ListField(child=serializers.IntegerField(allow_null=True))
    tokens_before = serializers.IntegerField()
    tokens_after = serializers.IntegerField()
    turns_removed = serializers.IntegerField()


class ChatDetailBody(ChatBody):
    messages = MessageBody(many=True)
    queued = MessageBody(many=True)
    running = serializers.BooleanField()
    compactions = CompactionBody(many=True)
    system_prompt = serializers.CharField(required=False, allow_blank=True,
                                          help_text="What the model is told (admins only).")


class DeletedBody(serializers.Serializer):
    deleted = serializers.BooleanField()


class CancelledBody(serializers.Serializer):
    cancelled = serializers.BooleanField(help_text="False when no turn was running.")


class PanicBody(serializers.Serializer):
    cancelled = serializers.IntegerField(min_value=0, help_text="Turns cancelled.")


class ContextBody(serializers.Serializer):
    current_tokens = serializers.IntegerField(min_value=0)
    context_window = serializers.IntegerField(min_value=1)
    compaction_threshold = serializers.FloatField()
    percent_used = serializers.FloatField(min_value=0)


class CompactedBody(serializers.Serializer):
    tokens_before = serializers.IntegerField(min_value=0)
    tokens_after = serializers.IntegerField(min_value=0)
    turns_removed = serializers.IntegerField(min_value=0)


class ChatProfileBody(serializers.Serializer):
    profile_name = serializers.CharField(allow_null=True)
    follows_default = serializers.BooleanField(
        required=False, help_text="True when the chat uses whatever the default is.")


# ---------------------------------------------------------------------------- profiles

class StoredProfileBody(serializers.Serializer):
    provider = serializers.ChoiceField(choices=PROVIDERS)
    model = serializers.CharField()
    base_url = serializers.CharField(allow_null=True)
    api_key = serializers.CharField(allow_null=True, help_text='Masked: "...abcd".')
    context_window = serializers.IntegerField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)


class NamedProfileBody(serializers.Serializer):
    name = serializers.CharField()
    profile = StoredProfileBody()


class ProfilesBody(serializers.Serializer):
    default = serializers.CharField(allow_null=True)
    profiles = serializers.DictField(child=StoredProfileBody())


# /api/profiles/default is the default-profile endpoint, so no profile is called that.
PROFILE_NAME = OpenApiParameter(
    "name", str, OpenApiParameter.PATH, pattern=r"^(?!default$)[-a-zA-Z0-9_]{1,64}$",
    description="The profile's name (a slug; never `default`, which is the "
                "default-profile endpoint).")


class DefaultProfileBody(serializers.Serializer):
    default = serializers.CharField(allow_null=True)


# ------------------------------------------------------------------------- permissions

class PermissionsBody(serializers.Serializer):
    mode = serializers.ChoiceField(choices=MODES)
    tool_overrides = serializers.DictField(child=serializers.ChoiceField(choices=LEVELS))


class ToolsBody(serializers.Serializer):
    tools = serializers.ListField(child=serializers.CharField())


class SandboxBody(serializers.Serializer):
    enabled = serializers.BooleanField()
    memory_limit_mb = serializers.IntegerField()
    cpu_seconds = serializers.IntegerField()
    timeout_seconds = serializers.IntegerField()
    network_enabled = serializers.BooleanField()
    workspace_mode = serializers.ChoiceField(choices=WORKSPACE_MODES)
