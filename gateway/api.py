"""Small pieces shared by every REST view: role permission and body parsing."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.views import APIView


class IsAdminOrReadOnly(permissions.BasePermission):
    """Members read configuration; only admins (staff users) change it."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or bool(user.is_staff)


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know, also when nested in another serializer (``validated``
    only sees the top level)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({key: "Unknown field."
                                                   for key in sorted(unknown)})
        return super().to_internal_value(data)


def validated(serializer_class: type[serializers.Serializer], request: Request,
              *, partial: bool = False) -> dict[str, Any]:
    """The request body checked by a serializer; a bad body raises a 400 with fields."""
    data = request.data
    if not isinstance(data, dict):
        raise serializers.ValidationError({"body": "Send a JSON object."})
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    unknown = set(data) - set(serializer.fields)
    if unknown:
        raise serializers.ValidationError({key: "Unknown field." for key in sorted(unknown)})
    return dict(serializer.validated_data)
