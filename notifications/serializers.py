"""Request bodies of the notifications API."""

from __future__ import annotations

from rest_framework import serializers

from gateway.api import StrictSerializer
from notifications.models import KINDS


class DestinationSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=64)
    kind = serializers.ChoiceField(choices=KINDS)
    # A webhook URL (discord, slack, webhook) or comma-separated e-mail addresses.
    target = serializers.CharField(max_length=2000, write_only=True)
    secret = serializers.CharField(min_length=16, max_length=200, required=False,
                                   write_only=True)
    enabled = serializers.BooleanField(required=False)


class DestinationUpdateSerializer(DestinationSerializer):
    kind = None  # a destination keeps its kind


class ChatNotifySerializer(StrictSerializer):
    # The id of one of the caller's destinations; null: no notification.
    destination = serializers.IntegerField(allow_null=True, min_value=1,
                                           max_value=2 ** 63 - 1)
