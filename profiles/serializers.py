"""Bodies of the profile API, for the OpenAPI schema (the views return plain dicts)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from profiles.models import PROVIDERS


class StoredProfileBody(serializers.Serializer):
    provider = serializers.ChoiceField(choices=PROVIDERS)
    model = serializers.CharField()
    base_url = serializers.CharField(allow_null=True)
    api_key = serializers.CharField(allow_null=True, help_text='Masked: "...abcd".')
    context_window = serializers.IntegerField(allow_null=True)
    max_output_tokens = serializers.IntegerField(allow_null=True)
    vision = serializers.BooleanField(help_text="Attached images reach the model as image "
                                                "parts.")
    auto_title = serializers.BooleanField(help_text="Ask the model for a short title "
                                          "after a chat's first reply.")


class ModelListBody(serializers.Serializer):
    models = serializers.ListField(child=serializers.CharField(),
                                   help_text="Model ids the provider serves.")


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
