"""Users and groups for admins (REST), and the page an invite link opens."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.contrib.auth.views import PasswordResetConfirmView
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import record
from gateway.api import StrictSerializer, validated
from gateway.errors import GatewayError
from gateway.schema import responses
from users import services

OBJECT = OpenApiTypes.OBJECT
USERNAME = serializers.RegexField(r"^[\w.@+-]{1,150}$", max_length=150)
GROUPS = serializers.ListField(child=serializers.CharField(max_length=150), max_length=100,
                               required=False)


class UserCreateSerializer(StrictSerializer):
    username = USERNAME
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    is_staff = serializers.BooleanField(required=False, default=False)
    groups = GROUPS
    password = serializers.CharField(min_length=8, max_length=200, required=False,
                                     write_only=True)


class UserUpdateSerializer(StrictSerializer):
    email = serializers.EmailField(required=False, allow_blank=True)
    is_staff = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False)
    groups = GROUPS


class UserListView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=responses({200: OBJECT}, 403), operation_id="api_users_list")
    def get(self, request: Request) -> Response:
        rows = services.User.objects.order_by("username").prefetch_related("groups")
        return Response({"users": [services.user_dict(u) for u in rows]})

    @extend_schema(request=UserCreateSerializer,
                   responses=responses({201: OBJECT}, 403, 409, body=True))
    def post(self, request: Request) -> Response:
        user = services.create_user(**validated(UserCreateSerializer, request))
        return Response(services.user_dict(user), status=status.HTTP_201_CREATED)


class UserDetailView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=responses({200: OBJECT}, 403, 404))
    def get(self, request: Request, username: str) -> Response:
        return Response(services.user_dict(services.user_by_name(username)))

    @extend_schema(request=UserUpdateSerializer,
                   responses=responses({200: OBJECT}, 403, 404, 409, body=True))
    def patch(self, request: Request, username: str) -> Response:
        """Promote or demote (``is_staff``), deactivate or reactivate (``is_active``),
        set email and groups."""
        user = services.user_by_name(username)
        body = validated(UserUpdateSerializer, request, partial=True)
        services.update_user(request.user, user, body)
        return Response(services.user_dict(user))


class UserInviteView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=responses({201: OBJECT}, 403, 404, 409))
    def post(self, request: Request, username: str) -> Response:
        """A one-time sign-in link that sets the user's password (shown once)."""
        user = services.user_by_name(username)
        link = services.invite_link(user, request.build_absolute_uri("/"))
        record("user", "invited", target=f"user {user}", data={"expires_at":
                                                               link["expires_at"]})
        return Response(link, status=status.HTTP_201_CREATED)


class GroupSerializer(StrictSerializer):
    name = serializers.CharField(max_length=150)


class GroupListView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=responses({200: OBJECT}, 403), operation_id="api_groups_list")
    def get(self, request: Request) -> Response:
        rows = Group.objects.order_by("name").prefetch_related("user_set")
        return Response({"groups": [{"name": g.name, "members": sorted(
            u.get_username() for u in g.user_set.all())} for g in rows]})

    @extend_schema(request=GroupSerializer,
                   responses=responses({201: OBJECT}, 403, 409, body=True))
    def post(self, request: Request) -> Response:
        name = validated(GroupSerializer, request)["name"]
        try:
            with transaction.atomic():
                Group.objects.create(name=name)
        except IntegrityError:
            raise GatewayError("group_exists", f"A group named {name!r} exists.", 409) from None
        return Response({"name": name, "members": []}, status=status.HTTP_201_CREATED)


class GroupDetailView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=responses({204: None}, 403, 404))
    def delete(self, request: Request, name: str) -> Response:
        deleted, _ = Group.objects.filter(name=name).delete()
        if not deleted:
            raise GatewayError("not_found", "No such group.", 404)
        return Response(status=status.HTTP_204_NO_CONTENT)


class InviteView(PasswordResetConfirmView):
    """The page an invite link opens: set a password, and be signed in. Django's view
    checks the one-time token and keeps it out of the URL after the first request."""

    template_name = "users/invite.html"
    post_reset_login = True
    # Two backends are configured (django-axes in front of the model backend): name the
    # one that signs the invited user in.
    post_reset_login_backend = "django.contrib.auth.backends.ModelBackend"
    success_url = "/"

    def dispatch(self, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().dispatch(*args, **kwargs)
        response["Content-Security-Policy"] = ("default-src 'self'; form-action 'self'; "
                                               "frame-ancestors 'none'; base-uri 'none'")
        response["Referrer-Policy"] = "no-referrer"
        return response

    def form_valid(self, form: Any) -> HttpResponse:
        record("user", "invite_used", target=f"user {self.user}", actor=self.user)
        return super().form_valid(form)


