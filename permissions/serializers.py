"""Bodies of the permission and sandbox API, for the OpenAPI schema."""

from __future__ import annotations

from rest_framework import serializers

from permissions.models import LEVELS, MODES, WORKSPACE_MODES


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
