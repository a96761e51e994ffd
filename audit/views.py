"""``GET /api/audit``: the audit log for admins, newest first, with filters. Read only:
every other method is refused, and the records cannot be changed at all."""

from __future__ import annotations

import datetime as dt
import uuid

from django.db.models import Q
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import KINDS, AuditEvent
from gateway.errors import GatewayError
from gateway.schema import responses

MAX_PAGE = 200


def _param_error(name: str, message: str) -> GatewayError:
    return GatewayError("invalid_request", f"{name}: {message}", 400, {name: message})


def _when(raw: str | None, name: str) -> dt.datetime | None:
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise _param_error(name, "An ISO 8601 date or date-time.") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _int(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _param_error(name, f"Between {low} and {high}.")
    return value


class AuditListView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(parameters=[
        OpenApiParameter("kind", str, enum=list(KINDS)),
        OpenApiParameter("user", str, description="Who acted (username)."),
        OpenApiParameter("chat", str), OpenApiParameter("action", str),
        OpenApiParameter("q", str, description="Text in the target."),
        OpenApiParameter("since", str), OpenApiParameter("until", str),
        OpenApiParameter("before", int, description="Records with a smaller id (paging)."),
        OpenApiParameter("limit", int)],
        responses=responses({200: OpenApiTypes.OBJECT}, 400, 403))
    def get(self, request: Request) -> Response:
        params = request.query_params
        rows = AuditEvent.objects.all()
        if params.get("kind"):
            if params["kind"] not in KINDS:
                raise _param_error("kind", "One of " + ", ".join(KINDS) + ".")
            rows = rows.filter(kind=params["kind"])
        if params.get("user"):
            rows = rows.filter(actor_name=params["user"])
        if params.get("action"):
            rows = rows.filter(action=params["action"])
        if params.get("q"):
            rows = rows.filter(Q(target__icontains=params["q"]))
        if params.get("chat"):
            try:
                rows = rows.filter(chat_id=uuid.UUID(params["chat"]))
            except ValueError:
                raise _param_error("chat", "A chat id.") from None
        since, until = _when(params.get("since"), "since"), _when(params.get("until"), "until")
        if since:
            rows = rows.filter(at__gte=since)
        if until:
            rows = rows.filter(at__lt=until)
        if params.get("before"):
            rows = rows.filter(id__lt=_int(params["before"], "before", 0, 1, 2**62))
        limit = _int(params.get("limit"), "limit", 50, 1, MAX_PAGE)
        page = list(rows.order_by("-id")[:limit + 1])
        return Response({"events": [e.to_dict() for e in page[:limit]],
                         "next_before": page[limit - 1].id if len(page) > limit else None})
