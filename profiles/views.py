"""REST views of model profiles and the default profile."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access import services as access
from gateway.api import IsAdminOrReadOnly, StrictSerializer, validated
from gateway.errors import GatewayError
from gateway.schema import responses
from profiles import upstream
from profiles.models import PROVIDERS, ModelProfile
from profiles.serializers import (
    PROFILE_NAME,
    DefaultProfileBody,
    ModelListBody,
    NamedProfileBody,
    ProfilesBody,
)


def http_url(value: str) -> None:
    """An http(s) URL. Not Django's URLValidator: it refuses single-label hosts such as a
    Compose service (``http://ollama:11434/v1``) and lets ``ftp://`` through."""
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and \
            (parts.port is None or parts.port > 0) and " " not in value
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise serializers.ValidationError("Enter an http:// or https:// URL.")


class ProfileBodySerializer(StrictSerializer):
    provider = serializers.ChoiceField(choices=PROVIDERS)
    model = serializers.CharField(max_length=200)
    base_url = serializers.CharField(max_length=500, required=False, allow_blank=True,
                                     allow_null=True, validators=[http_url])
    api_key = serializers.CharField(max_length=500, required=False, allow_blank=True,
                                    allow_null=True, trim_whitespace=True)
    context_window = serializers.IntegerField(min_value=256, max_value=100_000_000,
                                              required=False, allow_null=True)
    max_output_tokens = serializers.IntegerField(min_value=1, max_value=10_000_000,
                                                 required=False, allow_null=True)
    vision = serializers.BooleanField(required=False)
    auto_title = serializers.BooleanField(required=False, default=False)


# Names that are routes under /api/profiles/ and so cannot name a profile.
RESERVED_NAMES = frozenset({"default"})


class ProfileCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=64)
    profile = ProfileBodySerializer()

    def validate_name(self, value: str) -> str:
        if value.lower() in RESERVED_NAMES:
            raise serializers.ValidationError(f"{value!r} is reserved (it is the "
                                              "default-profile endpoint); pick another name.")
        return value


class ProfileNameSerializer(serializers.Serializer):
    """``{"name"}``, or Clotho's ``{"profile_name"}``."""

    name = serializers.CharField(max_length=64, required=False)
    profile_name = serializers.CharField(max_length=64, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        name = attrs.get("name") or attrs.get("profile_name")
        if not name:
            raise serializers.ValidationError({"name": "This field is required."})
        return {"name": name}


def profile_by_name(name: str, *, in_body: bool = False, field: str = "name") -> ModelProfile:
    """The profile called ``name``: 404 when the URL names a missing one, 400 (with the
    body's ``field``) when a request body does."""
    profile = ModelProfile.objects.filter(name=name).first()
    if profile is None:
        message = f"No profile named {name!r}; GET /api/profiles lists them."
        if in_body:
            raise GatewayError("unknown_profile", message, 400, {field: message})
        raise GatewayError("not_found", message, 404)
    return profile


def profiles_listing(user: Any = None) -> dict[str, Any]:
    """Every profile (``user`` None), or those ``user`` may use with his default: the
    gateway's when he may use it, else the first he may."""
    if user is None:
        profiles = list(ModelProfile.objects.all())
        default = next((p.name for p in profiles if p.is_default), None)
    else:
        profiles = access.allowed_profiles(user)
        fallback = access.default_for(user)
        default = fallback.name if fallback else None
    return {"default": default, "profiles": {p.name: p.to_dict() for p in profiles}}


class ProfileListView(APIView):
    permission_classes = [IsAdminOrReadOnly]

    @extend_schema(responses=responses({200: ProfilesBody}), operation_id="api_profiles_list")
    def get(self, request: Request) -> Response:
        return Response(profiles_listing(request.user))

    @extend_schema(request=ProfileCreateSerializer,
                   responses=responses({201: NamedProfileBody}, 403, 409, body=True))
    def post(self, request: Request) -> Response:
        body = validated(ProfileCreateSerializer, request)
        fields = body["profile"]
        profile = ModelProfile(name=body["name"], provider=fields["provider"],
                               model=fields["model"], base_url=fields.get("base_url") or "",
                               context_window=fields.get("context_window"),
                               max_output_tokens=fields.get("max_output_tokens"),
                               vision=fields.get("vision", False),
                               auto_title=fields["auto_title"])
        profile.set_api_key(fields.get("api_key"))
        try:
            with transaction.atomic():
                profile.save()
                # The first profile becomes the default, so a fresh gateway works at once.
                if not ModelProfile.objects.filter(is_default=True).exists():
                    profile.make_default()
        except IntegrityError:
            raise GatewayError("profile_exists", f"A profile named {profile.name!r} exists; "
                               "delete it first or pick another name.", 409,
                               {"name": "Already exists."}) from None
        return Response({"name": profile.name, "profile": profile.to_dict()},
                        status=status.HTTP_201_CREATED)


class ProfilePatchSerializer(ProfileBodySerializer):
    """Every field optional; an ``api_key`` left out keeps the stored key (null or ""
    clears it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
        self.fields["auto_title"].default = serializers.empty


class ProfileDetailView(APIView):
    permission_classes = [IsAdminOrReadOnly]

    @extend_schema(parameters=[PROFILE_NAME], request=ProfilePatchSerializer,
                   responses=responses({200: NamedProfileBody}, 403, 404, body=True))
    def patch(self, request: Request, name: str) -> Response:
        """Edit a profile in place (the key only when ``api_key`` is given)."""
        profile = profile_by_name(name)
        body = validated(ProfilePatchSerializer, request)
        if "api_key" in body:
            profile.set_api_key(body.pop("api_key"))
        if "base_url" in body:
            body["base_url"] = body["base_url"] or ""
        for key, value in body.items():
            setattr(profile, key, value)
        profile.save()
        return Response({"name": profile.name, "profile": profile.to_dict()})

    @extend_schema(parameters=[PROFILE_NAME], responses=responses({200: NamedProfileBody}, 404))
    def get(self, request: Request, name: str) -> Response:
        profile = profile_by_name(name)
        if not access.may_use(request.user, profile):  # members see only what they may use
            raise GatewayError("not_found", f"No profile named {name!r}; GET /api/profiles "
                               "lists them.", 404)
        return Response({"name": profile.name, "profile": profile.to_dict()})

    @extend_schema(parameters=[PROFILE_NAME], responses=responses({204: None}, 400, 403, 404))
    def delete(self, request: Request, name: str) -> Response:
        profile = profile_by_name(name)
        if profile.is_default:
            raise GatewayError("profile_in_use", f"{name!r} is the default profile; make "
                               "another profile the default before deleting it.", 400)
        profile.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProfileModelsView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(parameters=[PROFILE_NAME], responses=responses({200: ModelListBody},
                                                                  403, 404, 502))
    def get(self, request: Request, name: str) -> Response:
        """The models the profile's provider serves: also the "test connection"."""
        return Response({"models": upstream.list_models(profile_by_name(name))})


class DefaultProfileView(APIView):
    permission_classes = [IsAdminOrReadOnly]

    @extend_schema(responses=responses({200: DefaultProfileBody}))
    def get(self, request: Request) -> Response:
        default = access.default_for(request.user)
        return Response({"default": default.name if default else None})

    @extend_schema(request=ProfileNameSerializer,
                   responses=responses({200: DefaultProfileBody}, 403, body=True))
    def put(self, request: Request) -> Response:
        profile = profile_by_name(validated(ProfileNameSerializer, request)["name"], in_body=True)
        profile.make_default()
        return Response({"default": profile.name})

    post = put  # Clotho's POST /api/profiles/default/set
