"""REST views of chats. They parse, call one service, and return ``to_dict()``s."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from typing import Any

from asgiref.sync import async_to_sync
from django.db.models import Q, QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from access.services import check_use, default_for
from chats import frames, search, services
from chats.access import get_chat_for
from chats.models import Chat
from chats.turns import get_manager
from gateway.api import OneHopAPIView, validated
from gateway.errors import GatewayError
from chats.serializers import (
    BulkDeletedBody,
    CancelledBody,
    ChatBody,
    ChatDetailBody,
    ChatListBody,
    ChatProfileBody,
    CompactedBody,
    ContextBody,
    DeletedBody,
    PanicBody,
    ResentBody,
)
from gateway.schema import responses
from profiles.views import ProfileNameSerializer, profile_by_name

MAX_PAGE = 100
MAX_QUERY = 200
MAX_BULK = 500


class ChatCreateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    profile = serializers.CharField(max_length=64, required=False, allow_null=True)


class ChatUpdateSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, allow_blank=True)


def _listing(rows: QuerySet[Chat]) -> list[dict[str, Any]]:
    """``Chat.to_dict()`` of each row, read as plain values: a full listing holds
    thousands of chats, and building a model instance for each costs most of the time."""
    return [{"chat_id": str(pk), "title": title, "profile": profile,
             "created_at": created.isoformat(), "updated_at": updated.isoformat()}
            for pk, title, profile, created, updated in rows.values_list(
                "id", "title", "profile__name", "created_at", "updated_at")]


def _encode_cursor(chat: dict[str, Any]) -> str:
    raw = f"{chat['updated_at']}|{chat['chat_id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, chat_id = raw.split("|")
        moment = dt.datetime.fromisoformat(when)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time has an offset")
        # In UTC here: a time at the edge of the calendar with an offset (9999-12-31
        # 23:59-23:59) cannot be, and the database layer would fail on it with a 500.
        return moment.astimezone(dt.timezone.utc), uuid.UUID(chat_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise GatewayError("invalid_cursor", "The cursor is not one this API returned.",
                           400, {"cursor": "Invalid cursor."}) from None


def _limit(raw: str | None) -> int | None:
    """The page size; None (no ``limit``) lists every chat, as the spec says."""
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_PAGE:
        raise GatewayError("invalid_request", f"limit must be between 1 and {MAX_PAGE}.",
                           400, {"limit": f"Between 1 and {MAX_PAGE}."})
    return value


def _query(raw: str | None) -> str | None:
    if raw is None:
        return None
    if len(raw) > MAX_QUERY:
        raise GatewayError("invalid_request", f"q is at most {MAX_QUERY} characters.", 400,
                           {"q": f"At most {MAX_QUERY} characters."})
    return raw


class ChatListView(OneHopAPIView):
    @extend_schema(parameters=[OpenApiParameter("limit", int, description="Page size; "
                                                "without it every chat is listed."),
                               OpenApiParameter("cursor", str),
                               OpenApiParameter("q", str, description="Search titles and "
                                                "message text (every word, as a prefix).")],
                   responses=responses({200: ChatListBody}, 400), operation_id="api_chats_list")
    def get(self, request: Request) -> Response:
        """The caller's chats, most recent activity first: all of them, or a page at a
        time with ``limit`` (``next`` is the cursor of the next page)."""
        limit = _limit(request.query_params.get("limit"))
        rows = Chat.objects.filter(owner=request.user)
        query = _query(request.query_params.get("q"))
        if query is not None:
            rows = rows.filter(search.matching(query))
        cursor = request.query_params.get("cursor")
        if cursor:
            when, chat_id = _decode_cursor(cursor)
            rows = rows.filter(Q(updated_at__lt=when) | Q(updated_at=when, id__lt=chat_id))
        rows = rows.order_by("-updated_at", "-id")
        if limit is None:
            return Response({"chats": _listing(rows), "next": None})
        page = _listing(rows[:limit + 1])
        next_cursor = _encode_cursor(page[limit - 1]) if len(page) > limit else None
        return Response({"chats": page[:limit], "next": next_cursor})

    @extend_schema(request=ChatCreateSerializer, responses=responses({201: ChatBody}, body=True))
    def post(self, request: Request) -> Response:
        body = validated(ChatCreateSerializer, request)
        profile = (profile_by_name(body["profile"], in_body=True, field="profile")
                   if body.get("profile") else None)
        if profile is not None:
            check_use(request.user, profile, field="profile")
        chat = Chat.objects.create(owner=request.user, title=body.get("title", ""),
                                   profile=profile)
        return Response(chat.to_dict(), status=status.HTTP_201_CREATED)


class BulkDeleteSerializer(serializers.Serializer):
    chat_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1,
                                     max_length=MAX_BULK)


class ChatBulkDeleteView(APIView):
    @extend_schema(request=BulkDeleteSerializer,
                   responses=responses({200: BulkDeletedBody}, body=True))
    def post(self, request: Request) -> Response:
        """Delete several of the caller's chats; ids that name no chat of the caller
        are listed under ``not_found`` (another user's chat looks the same)."""
        wanted = validated(BulkDeleteSerializer, request)["chat_ids"]
        chats = list(Chat.objects.filter(owner=request.user, pk__in=wanted))
        deleted = services.delete_chats(chats)
        missing = sorted({str(i) for i in wanted} - set(deleted))
        return Response({"deleted": deleted, "not_found": missing})


class ChatDetailView(APIView):
    @extend_schema(responses=responses({200: ChatDetailBody}, 404))
    def get(self, request: Request, chat_id: str) -> Response:
        chat = get_chat_for(request.user, chat_id)
        return Response(services.chat_detail(chat, request.user))

    @extend_schema(request=ChatUpdateSerializer,
                   responses=responses({200: ChatBody}, 404, body=True))
    def patch(self, request: Request, chat_id: str) -> Response:
        chat = get_chat_for(request.user, chat_id)
        chat.title = validated(ChatUpdateSerializer, request)["title"]
        chat.title_auto = False  # a person's title: the server never replaces it
        chat.save(update_fields=["title", "title_auto", "updated_at"])
        return Response(chat.to_dict())

    @extend_schema(responses=responses({200: DeletedBody}, 404))
    def delete(self, request: Request, chat_id: str) -> Response:
        chat = get_chat_for(request.user, chat_id)
        services.stop_turn(chat)
        chat.delete()
        return Response({"deleted": True})


class RegenerateSerializer(serializers.Serializer):
    stream = serializers.BooleanField(required=False, default=True)


class EditSerializer(RegenerateSerializer):
    content = serializers.JSONField(help_text="A non-empty string or content blocks.")

    def validate_content(self, value: Any) -> Any:
        try:
            return frames.content(value)
        except GatewayError as exc:
            raise serializers.ValidationError(exc.message) from None


class MessageRegenerateView(APIView):
    @extend_schema(request=RegenerateSerializer,
                   responses=responses({202: ResentBody}, 400, 404, 409, body=True))
    def post(self, request: Request, chat_id: str, message_id: int) -> Response:
        """Retry or regenerate: run the user message (or the one a reply answered)
        again. The replaced messages stay, marked ``superseded``."""
        chat = get_chat_for(request.user, chat_id)
        body = validated(RegenerateSerializer, request)
        return Response(services.resend(chat, message_id, stream=body["stream"]),
                        status=status.HTTP_202_ACCEPTED)


class MessageEditView(APIView):
    @extend_schema(request=EditSerializer,
                   responses=responses({202: ResentBody}, 400, 404, 409, body=True))
    def post(self, request: Request, chat_id: str, message_id: int) -> Response:
        """Edit a user message and send it again; the old one and what followed stay,
        marked ``superseded``."""
        chat = get_chat_for(request.user, chat_id)
        body = validated(EditSerializer, request)
        return Response(services.resend(chat, message_id, body["content"], body["stream"]),
                        status=status.HTTP_202_ACCEPTED)


class ChatCancelView(APIView):
    @extend_schema(request=None, responses=responses({200: CancelledBody}, 404))
    def post(self, request: Request, chat_id: str) -> Response:
        chat = get_chat_for(request.user, chat_id)
        return Response({"cancelled": services.request_cancel(chat)})


class ChatContextView(APIView):
    @extend_schema(responses=responses({200: ContextBody}, 404))
    def get(self, request: Request, chat_id: str) -> Response:
        chat = get_chat_for(request.user, chat_id)
        return Response(services.context_report(chat))


class ChatCompactView(APIView):
    @extend_schema(request=None, responses=responses({200: CompactedBody}, 400, 404, 409, 502))
    def post(self, request: Request, chat_id: str) -> Response:
        chat = get_chat_for(request.user, chat_id)
        return Response(services.compact(chat))


class ChatProfileView(APIView):
    @extend_schema(responses=responses({200: ChatProfileBody}, 404))
    def get(self, request: Request, chat_id: str) -> Response:
        """The profile the chat's next turn uses: its own, else the default (then
        ``follows_default`` is true)."""
        chat = get_chat_for(request.user, chat_id)
        if chat.profile:
            return Response({"profile_name": chat.profile.name, "follows_default": False})
        default = default_for(request.user)
        return Response({"profile_name": default.name if default else None,
                         "follows_default": True})

    @extend_schema(request=ProfileNameSerializer,
                   responses=responses({200: ChatProfileBody}, 404, body=True))
    def put(self, request: Request, chat_id: str) -> Response:
        chat = get_chat_for(request.user, chat_id)
        profile = profile_by_name(validated(ProfileNameSerializer, request)["name"],
                                  in_body=True)
        check_use(request.user, profile, field="name")
        services.switch_profile(chat, profile)
        return Response({"profile_name": profile.name})

    post = put  # Clotho's POST /api/chats/{id}/active-profile


class PanicView(APIView):
    @extend_schema(request=None, responses=responses({200: PanicBody}))
    def post(self, request: Request) -> Response:
        """Clotho's emergency stop: cancel every running turn of the caller (all turns,
        for an admin)."""
        rows = Chat.objects.filter(turn_owner__isnull=False,
                                   turn_lease_until__gte=timezone.now())
        if not request.user.is_staff:
            rows = rows.filter(owner=request.user)
        ids = [str(pk) for pk in rows.values_list("pk", flat=True)]
        for chat_id in ids:
            async_to_sync(get_manager().cancel)(chat_id)
        return Response({"cancelled": len(ids)})

