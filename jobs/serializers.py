"""Request bodies of the jobs API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from gateway.api import StrictSerializer
from jobs.models import SCHEDULE_KINDS
from jobs.schedule import cron_error, timezone_error

MIN_INTERVAL = 60  # seconds; a tighter loop is a chat, not a schedule


class ScheduleSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=SCHEDULE_KINDS)
    cron = serializers.CharField(max_length=120, required=False)
    timezone = serializers.CharField(max_length=64, required=False, default="UTC")
    seconds = serializers.IntegerField(min_value=MIN_INTERVAL, max_value=366 * 86400,
                                       required=False)
    at = serializers.DateTimeField(required=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        # A schedule is always replaced whole, also in a PATCH (where DRF validates
        # nested fields as partial and applies no defaults).
        kind = data.get("kind")
        if kind is None:
            raise serializers.ValidationError({"kind": "This field is required."})
        needs = {"cron": "cron", "interval": "seconds", "once": "at"}[kind]
        if needs not in data:
            raise serializers.ValidationError({needs: f"Required for kind {kind}."})
        data.setdefault("timezone", "UTC")
        if kind == "cron":
            problem = cron_error(data["cron"])
            if problem:
                raise serializers.ValidationError({"cron": problem})
            problem = timezone_error(data["timezone"])
            if problem:
                raise serializers.ValidationError({"timezone": problem})
        return data


class JobSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=64)
    schedule = ScheduleSerializer()
    prompt = serializers.CharField(max_length=100_000)
    profile = serializers.CharField(max_length=64, required=False, allow_null=True)
    enabled = serializers.BooleanField(required=False, default=True)
    allowed_tools = serializers.ListField(
        child=serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,128}$"), max_length=100,
        required=False, default=list)
    destinations = serializers.ListField(child=serializers.SlugField(max_length=64),
                                         max_length=20, required=False, default=list)


class JobUpdateSerializer(JobSerializer):
    """Every field optional (PATCH); defaults would overwrite what was not sent."""

    enabled = serializers.BooleanField(required=False)
    allowed_tools = serializers.ListField(
        child=serializers.RegexField(r"^[A-Za-z0-9_.:-]{1,128}$"), max_length=100,
        required=False)
    destinations = serializers.ListField(child=serializers.SlugField(max_length=64),
                                         max_length=20, required=False)
