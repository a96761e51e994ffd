"""REST views of usage, budgets and prices. They parse, call ``usage.services``, and
return dicts (or CSV)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.api import IsAdminOrReadOnly, StrictSerializer, validated
from gateway.errors import GatewayError
from gateway.schema import responses
from profiles.views import profile_by_name
from usage import services
from usage.models import MONEY, PERIODS, Budget, ProfilePrice

# -- GET /api/usage ----------------------------------------------------------------------

USAGE_PARAMS = [
    OpenApiParameter("user", str, description="A username (admins; members see their own)."),
    OpenApiParameter("group_by", str, enum=list(services.GROUPINGS)),
    OpenApiParameter("from", str, description="First day (YYYY-MM-DD), inclusive."),
    OpenApiParameter("to", str, description="Last day (YYYY-MM-DD), inclusive."),
]

OBJECT = OpenApiTypes.OBJECT


def _day(raw: str | None, name: str) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise GatewayError("invalid_request", f"{name} must be a date (YYYY-MM-DD).", 400,
                           {name: "A date, YYYY-MM-DD."}) from None


def _start_of(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time()))


def _subject(request: Request) -> Any | None:
    """Whose usage: the caller's; an admin may name anyone, or nobody for everyone."""
    name = request.query_params.get("user")
    me = request.user
    if not me.is_staff:
        if name and name != me.get_username():
            raise GatewayError("forbidden", "Members see only their own usage.", 403)
        return me
    if not name:
        return None
    user = get_user_model().objects.filter(username=name).first()
    if user is None:
        raise GatewayError("invalid_request", f"No user named {name!r}.", 400,
                           {"user": "Unknown user."})
    return user


def _query(request: Request) -> tuple[Any, str | None]:
    params = request.query_params
    start, last = _day(params.get("from"), "from"), _day(params.get("to"), "to")
    if start and last and last < start:
        raise GatewayError("invalid_request", "to is before from.", 400,
                           {"to": "On or after from."})
    group_by = params.get("group_by") or None
    if group_by is not None and group_by not in services.GROUPINGS:
        raise GatewayError("invalid_request", "group_by must be one of "
                           + ", ".join(services.GROUPINGS) + ".", 400,
                           {"group_by": "Unknown grouping."})
    rows = services.records(_subject(request), start and _start_of(start),
                            last and _start_of(last + dt.timedelta(days=1)))
    return rows, group_by


class UsageView(APIView):
    @extend_schema(parameters=USAGE_PARAMS, responses=responses({200: OBJECT}, 400, 403))
    def get(self, request: Request) -> Response:
        """Totals and, with ``group_by``, sums per key; without it the latest calls."""
        rows, group_by = _query(request)
        body: dict[str, Any] = {"totals": services.totals(rows)}
        if group_by:
            body["group_by"] = group_by
            body["groups"] = services.grouped(rows, group_by)
        else:
            body["records"] = [r.to_dict() for r in rows[:200]]
        return Response(body)


CSV_COLUMNS = ["created_at", "user", "chat_id", "profile", "model", "input_tokens",
               "output_tokens", "duration_ms", "cost", "purpose"]


class UsageExportView(APIView):
    @extend_schema(parameters=USAGE_PARAMS,
                   responses=responses({(200, "text/csv"): str}, 400, 403))
    def get(self, request: Request) -> HttpResponse:
        """The same query as CSV: every call, or one line per key with ``group_by``."""
        rows, group_by = _query(request)
        out = io.StringIO()
        if group_by:
            lines = services.grouped(rows, group_by)
            columns = ["key", "calls", "input_tokens", "output_tokens", "cost", "duration_ms"]
        else:
            lines = [r.to_dict() for r in rows.iterator()]
            columns = CSV_COLUMNS
        writer = csv.DictWriter(out, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(lines)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="usage.csv"'
        return response


# -- budgets -----------------------------------------------------------------------------

class BudgetSerializer(StrictSerializer):
    user = serializers.CharField(max_length=150, required=False, allow_null=True)
    group = serializers.CharField(max_length=150, required=False, allow_null=True)
    period = serializers.ChoiceField(choices=PERIODS)
    limit_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    limit_cost = serializers.DecimalField(min_value=0, required=False, allow_null=True,
                                          **MONEY)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if bool(data.get("user")) == bool(data.get("group")):
            raise serializers.ValidationError({"user": "Give a user or a group (one)."})
        if data.get("limit_tokens") is None and data.get("limit_cost") is None:
            raise serializers.ValidationError({"limit_tokens": "Give limit_tokens, "
                                                               "limit_cost or both."})
        return data


class BudgetLimitsSerializer(StrictSerializer):
    limit_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    limit_cost = serializers.DecimalField(min_value=0, required=False, allow_null=True,
                                          **MONEY)


def _budget_subject(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("user"):
        user = get_user_model().objects.filter(username=body["user"]).first()
        if user is None:
            raise GatewayError("invalid_request", "No such user.", 400, {"user": "Unknown."})
        return {"user": user}
    group = Group.objects.filter(name=body["group"]).first()
    if group is None:
        raise GatewayError("invalid_request", "No such group.", 400, {"group": "Unknown."})
    return {"group": group}


class BudgetListView(APIView):
    permission_classes = [IsAdminOrReadOnly]

    @extend_schema(responses=responses({200: OBJECT}))
    def get(self, request: Request) -> Response:
        """Every budget with what is used (admins); a member's own budgets."""
        rows = Budget.objects.select_related("user", "group")
        if not request.user.is_staff:
            rows = services.budgets_of(request.user).select_related("user", "group")
        return Response({"budgets": [services.status_of(b).to_dict() for b in rows]})

    @extend_schema(request=BudgetSerializer, responses=responses({201: OBJECT}, 403, 409,
                                                                 body=True))
    def post(self, request: Request) -> Response:
        body = validated(BudgetSerializer, request)
        try:
            with transaction.atomic():
                budget = Budget.objects.create(
                    **_budget_subject(body), period=body["period"],
                    limit_tokens=body.get("limit_tokens"), limit_cost=body.get("limit_cost"))
        except IntegrityError:
            raise GatewayError("budget_exists", "That user or group already has a "
                               f"{body['period']}ly budget; change it instead.", 409) from None
        return Response(services.status_of(budget).to_dict(), status=status.HTTP_201_CREATED)


def _budget(budget_id: int) -> Budget:
    budget = Budget.objects.filter(pk=budget_id).first()
    if budget is None:
        raise GatewayError("not_found", "No such budget.", 404)
    return budget


class BudgetDetailView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=BudgetLimitsSerializer, responses=responses({200: OBJECT}, 403, 404,
                                                                       body=True))
    def patch(self, request: Request, budget_id: int) -> Response:
        budget = _budget(budget_id)
        body = validated(BudgetLimitsSerializer, request)
        for key, value in body.items():
            setattr(budget, key, value)
        if budget.limit_tokens is None and budget.limit_cost is None:
            raise GatewayError("invalid_request", "A budget needs a limit.", 400,
                               {"limit_tokens": "Give limit_tokens, limit_cost or both."})
        budget.save()
        return Response(services.status_of(budget).to_dict())

    @extend_schema(responses=responses({204: None}, 403, 404))
    def delete(self, request: Request, budget_id: int) -> Response:
        _budget(budget_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


# -- prices ------------------------------------------------------------------------------

class PriceSerializer(StrictSerializer):
    input_per_million = serializers.DecimalField(min_value=0, **MONEY)
    output_per_million = serializers.DecimalField(min_value=0, **MONEY)
    currency = serializers.CharField(max_length=8, required=False, default="USD")


class PriceListView(APIView):
    permission_classes = [IsAdminOrReadOnly]

    @extend_schema(responses=responses({200: OBJECT}))
    def get(self, request: Request) -> Response:
        rows = ProfilePrice.objects.select_related("profile").order_by("profile__name")
        return Response({"prices": [p.to_dict() for p in rows]})


class PriceDetailView(APIView):
    permission_classes = [IsAdminOrReadOnly]

    @extend_schema(request=PriceSerializer, responses=responses({200: OBJECT}, 403, 404,
                                                                body=True))
    def put(self, request: Request, name: str) -> Response:
        """Set what the profile's calls cost, per million input and output tokens."""
        profile = profile_by_name(name)
        body = validated(PriceSerializer, request)
        price = ProfilePrice.objects.filter(profile=profile).first() or \
            ProfilePrice(profile=profile)
        for key, value in body.items():
            setattr(price, key, value)
        price.save()
        return Response(price.to_dict())

    @extend_schema(responses=responses({204: None}, 403, 404))
    def delete(self, request: Request, name: str) -> Response:
        profile = profile_by_name(name)
        ProfilePrice.objects.filter(profile=profile).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
