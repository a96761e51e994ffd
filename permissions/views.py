"""REST views of the permission policy and the sandbox config."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway import hooks
from gateway.api import IsAdminOrReadOnly, validated
from gateway.schema import responses
from permissions.models import LEVELS, MODES, WORKSPACE_MODES, PermissionPolicy, SandboxConfig
from permissions.serializers import PermissionsBody, SandboxBody, ToolsBody


def available_tools() -> list[str]:
    """Every tool name the model may call (built-ins first, then MCP tools). The policy
    knows no tools: the app that runs them provides the list (``gateway.hooks``)."""
    return hooks.tool_names()


class PermissionsSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=MODES, required=False)
    tool_overrides = serializers.DictField(child=serializers.ChoiceField(choices=LEVELS),
                                           required=False)

    def validate_tool_overrides(self, value: dict[str, str]) -> dict[str, str]:
        known = set(available_tools())
        unknown = sorted(set(value) - known)
        if unknown:
            raise serializers.ValidationError(
                f"Unknown tool(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
        return value


class SandboxSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    memory_limit_mb = serializers.IntegerField(min_value=32, max_value=1_048_576, required=False)
    cpu_seconds = serializers.IntegerField(min_value=1, max_value=86_400, required=False)
    timeout_seconds = serializers.IntegerField(min_value=1, max_value=86_400, required=False)
    network_enabled = serializers.BooleanField(required=False)
    workspace_mode = serializers.ChoiceField(choices=WORKSPACE_MODES, required=False)


def _apply(obj: Any, changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        setattr(obj, key, value)
    obj.save()


class PermissionsView(APIView):
    permission_classes = [IsAdminOrReadOnly]

    @extend_schema(responses=responses({200: PermissionsBody}))
    def get(self, request: Request) -> Response:
        return Response(PermissionPolicy.load().to_dict())

    @extend_schema(request=PermissionsSerializer,
                   responses=responses({200: PermissionsBody}, 403, body=True))
    def put(self, request: Request) -> Response:
        """Partial update; ``tool_overrides``, when given, replaces the whole map."""
        policy = PermissionPolicy.load()
        _apply(policy, validated(PermissionsSerializer, request, partial=True))
        return Response(policy.to_dict())


class ToolsView(APIView):
    @extend_schema(responses=responses({200: ToolsBody}))
    def get(self, request: Request) -> Response:
        return Response({"tools": available_tools()})


class SandboxConfigView(APIView):
    permission_classes = [IsAdminOrReadOnly]

    @extend_schema(responses=responses({200: SandboxBody}))
    def get(self, request: Request) -> Response:
        return Response(SandboxConfig.load().to_dict())

    @extend_schema(request=SandboxSerializer,
                   responses=responses({200: SandboxBody}, 403, body=True))
    def put(self, request: Request) -> Response:
        config = SandboxConfig.load()
        _apply(config, validated(SandboxSerializer, request, partial=True))
        return Response(config.to_dict())

    post = put  # Clotho's POST /api/sandbox
