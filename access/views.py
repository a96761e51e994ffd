"""REST views of model access: who may use which profile (admins only)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access import services
from gateway.api import validated
from gateway.errors import GatewayError
from gateway.schema import responses
from profiles.views import profile_by_name

NAMES = serializers.ListField(child=serializers.CharField(max_length=150), max_length=1000,
                              required=False, default=list)

OBJECT = OpenApiTypes.OBJECT


class GrantsSerializer(serializers.Serializer):
    users = NAMES
    groups = serializers.ListField(child=serializers.CharField(max_length=150),
                                   max_length=1000, required=False, default=list)


def _named(model: type, field: str, names: list[str], body_field: str) -> list:
    found = {getattr(o, field): o for o in model.objects.filter(**{f"{field}__in": names})}
    missing = sorted(set(names) - set(found))
    if missing:
        message = "Unknown: " + ", ".join(missing[:20])
        raise GatewayError("invalid_request", message, 400, {body_field: message})
    return list(found.values())


class AccessListView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=responses({200: OBJECT}, 403))
    def get(self, request: Request) -> Response:
        """Every profile: ``open`` to all, or the users and groups that may use it."""
        return Response(services.grants_listing())


class AccessDetailView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=GrantsSerializer, responses=responses({200: OBJECT}, 403, 404,
                                                                 body=True))
    def put(self, request: Request, name: str) -> Response:
        """Replace who may use the profile; empty lists open it to everyone."""
        profile = profile_by_name(name)
        body = validated(GrantsSerializer, request)
        users = _named(get_user_model(), "username", body["users"], "users")
        groups = _named(Group, "name", body["groups"], "groups")
        with transaction.atomic():
            services.set_grants(profile, users, groups)
        return Response(services.grants_listing()["profiles"][profile.name])
