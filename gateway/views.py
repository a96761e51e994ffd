"""Health and the caller's own API tokens."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway import hooks
from gateway.api import OneHopAPIView, validated
from gateway.auth import create_token
from gateway.errors import GatewayError
from gateway.models import ApiToken
from gateway.schema import (
    HealthBody,
    TokenCreatedBody,
    TokenListBody,
    responses,
)


def health_report() -> dict:
    """Status and version, plus the part of each app that plugs in (``gateway.hooks``)."""
    report: dict = {"status": "ok", "version": settings.VERSION}
    for part in hooks.health_parts:
        keys, degraded = part()
        report.update(keys)
        if degraded:
            report["status"] = "degraded"
    return report


class HealthView(OneHopAPIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(responses=responses({200: HealthBody}, auth=False))
    def get(self, request: Request) -> Response:
        return Response(health_report())


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, default="default")
    expires_in_days = serializers.IntegerField(min_value=1, max_value=3650, required=False,
                                               allow_null=True)


class TokenListView(APIView):
    @extend_schema(responses=responses({200: TokenListBody}))
    def get(self, request: Request) -> Response:
        tokens = ApiToken.objects.filter(user=request.user)
        current = getattr(request.auth, "digest", None)
        return Response({"tokens": [dict(t.to_dict(), current=t.digest == current)
                                    for t in tokens]})

    @extend_schema(request=TokenCreateSerializer,
                   responses=responses({201: TokenCreatedBody}, body=True))
    def post(self, request: Request) -> Response:
        body = validated(TokenCreateSerializer, request)
        days = body.get("expires_in_days")
        row, token = create_token(request.user, body["name"],
                                  dt.timedelta(days=days) if days else None)
        return Response(dict(row.to_dict(), token=token), status=status.HTTP_201_CREATED)


class TokenDetailView(APIView):
    @extend_schema(responses=responses({204: None}, 404))
    def delete(self, request: Request, token_id: str) -> Response:
        deleted, _ = ApiToken.objects.filter(user=request.user, token_key=token_id).delete()
        if not deleted:
            raise GatewayError("not_found", "No such token.", 404)
        return Response(status=status.HTTP_204_NO_CONTENT)


