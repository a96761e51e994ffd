"""``/api/mcp/servers``: members list the servers and their status; admins add and
remove them. Running processes pick changes up within ``GATEWAY_MCP_PROBE_INTERVAL``
seconds, and before the next turn they run."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.mcp import TRANSPORTS
from gateway.api import IsAdminOrReadOnly, validated
from gateway.errors import GatewayError
from mcp_servers import runtime
from mcp_servers.models import McpServer


class McpServerSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=40)
    transport = serializers.ChoiceField(choices=TRANSPORTS)
    enabled = serializers.BooleanField(required=False, default=True)
    tool_prefix = serializers.CharField(max_length=40, required=False, allow_blank=True,
                                        default="")
    command = serializers.CharField(max_length=500, required=False, allow_blank=True,
                                    default="")
    args = serializers.ListField(child=serializers.CharField(allow_blank=True,
                                                             trim_whitespace=False),
                                 required=False, default=list, max_length=200)
    env = serializers.DictField(child=serializers.CharField(allow_blank=True,
                                                            trim_whitespace=False),
                                required=False, default=dict)
    url = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    bearer_token_env = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                             default="")


def _server(name: str) -> McpServer:
    server = McpServer.objects.filter(name=name).first()
    if server is None:
        raise GatewayError("not_found", f"No MCP server named {name!r}; GET /api/mcp/servers "
                           "lists them.", 404)
    return server


def _body(server: McpServer, request: Request, live: dict[str, Any]) -> dict[str, Any]:
    body = server.to_dict(reveal_env=bool(request.user.is_staff))
    body["status"] = live.get(server.name) or {"state": "disabled", "message": None,
                                               "tools": 0, "restarts": 0}
    return body


def create_server(fields: dict[str, Any]) -> McpServer:
    """Validate with the model's rules (the admin's too) and save; 400/409 otherwise."""
    server = McpServer(**fields)
    if McpServer.objects.filter(name=server.name).exists():
        raise _exists(server.name)
    try:
        server.full_clean(validate_unique=False)
    except DjangoValidationError as exc:
        messages = {key: " ".join(value) for key, value in exc.message_dict.items()}
        summary = "; ".join(f"{key}: {value}" for key, value in messages.items())
        raise GatewayError("invalid_request", f"Invalid request: {summary}", 400,
                           messages) from None
    try:
        with transaction.atomic():
            server.save()
    except IntegrityError:  # created meanwhile
        raise _exists(server.name) from None
    return server


def _exists(name: str) -> GatewayError:
    return GatewayError("mcp_server_exists", f"An MCP server named {name!r} exists; delete "
                        "it first or pick another name.", 409, {"name": "Already exists."})


class McpServerListView(APIView):
    permission_classes = [IsAdminOrReadOnly]

    def get(self, request: Request) -> Response:
        live = runtime.statuses()
        return Response({"servers": [_body(s, request, live)
                                     for s in McpServer.objects.all()]})

    @extend_schema(request=McpServerSerializer)
    def post(self, request: Request) -> Response:
        server = create_server(validated(McpServerSerializer, request))
        return Response(_body(server, request, runtime.statuses()),
                        status=status.HTTP_201_CREATED)


class McpServerDetailView(APIView):
    permission_classes = [IsAdminOrReadOnly]

    def get(self, request: Request, name: str) -> Response:
        return Response(_body(_server(name), request, runtime.statuses()))

    def delete(self, request: Request, name: str) -> Response:
        _server(name).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
