"""Bodies of the chat API, for the OpenAPI schema (the views return plain dicts)."""

from __future__ import annotations

from rest_framework import serializers

from chats.models import Message


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
    current = serializers.BooleanField(help_text="False once retried, regenerated or "
                                       "edited (status superseded).")
    replaces = serializers.IntegerField(required=False)
    superseded_by = serializers.IntegerField(required=False)
    created_at = serializers.DateTimeField()
    tool_calls = serializers.ListField(child=serializers.JSONField(), required=False)
    tool_call_id = serializers.CharField(required=False, allow_blank=True)
    tool_name = serializers.CharField(required=False, allow_blank=True)
    is_error = serializers.BooleanField(required=False)
    usage = serializers.DictField(child=serializers.JSONField(), required=False)
    model = serializers.CharField(required=False)


class TurnErrorBody(serializers.Serializer):
    id = serializers.IntegerField()
    message_id = serializers.IntegerField(allow_null=True,
                                          help_text="The user message whose turn failed.")
    after_position = serializers.IntegerField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField(help_text="A sentence a person can act on.")
    detail = serializers.CharField(allow_blank=True, help_text="The technical text.")
    retryable = serializers.BooleanField()
    current = serializers.BooleanField(help_text="False once a retry replaced its turn.")
    created_at = serializers.DateTimeField()


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
    errors = TurnErrorBody(many=True)
    system_prompt = serializers.CharField(required=False, allow_blank=True,
                                          help_text="What the model is told (admins only).")


class BulkDeletedBody(serializers.Serializer):
    deleted = serializers.ListField(child=serializers.UUIDField())
    not_found = serializers.ListField(child=serializers.UUIDField())


class ResentBody(serializers.Serializer):
    message_id = serializers.IntegerField(help_text="The new, queued user message.")
    replaces = serializers.IntegerField()
    superseded = serializers.ListField(child=serializers.IntegerField())


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
