"""REST views of notification destinations, the delivery log, and the destination a chat
notifies when its turns end."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chats.access import get_chat_for
from gateway.api import validated
from gateway.schema import responses
from notifications import services
from notifications.models import Delivery, Destination
from notifications.serializers import (
    ChatNotifySerializer,
    DestinationSerializer,
    DestinationUpdateSerializer,
)

LOG_PAGE = 100


class DestinationListView(APIView):
    @extend_schema(responses=responses({200: OpenApiTypes.OBJECT}))
    def get(self, request: Request) -> Response:
        rows = Destination.objects.filter(owner=request.user)
        return Response({"destinations": [d.to_dict() for d in rows]})

    @extend_schema(request=DestinationSerializer, responses=responses({201: OpenApiTypes.OBJECT}, 409,
                                                                      body=True))
    def post(self, request: Request) -> Response:
        body = validated(DestinationSerializer, request)
        destination = services.create(request.user, body)
        return Response(destination.to_dict(), status=status.HTTP_201_CREATED)


class DestinationDetailView(APIView):
    @extend_schema(responses=responses({200: OpenApiTypes.OBJECT}, 404))
    def get(self, request: Request, destination_id: str) -> Response:
        return Response(services.get_destination_for(request.user, destination_id).to_dict())

    @extend_schema(request=DestinationUpdateSerializer,
                   responses=responses({200: OpenApiTypes.OBJECT}, 404, 409, body=True))
    def patch(self, request: Request, destination_id: str) -> Response:
        destination = services.get_destination_for(request.user, destination_id)
        body = validated(DestinationUpdateSerializer, request, partial=True)
        return Response(services.update(destination, body).to_dict())

    @extend_schema(responses=responses({200: OpenApiTypes.OBJECT}, 404))
    def delete(self, request: Request, destination_id: str) -> Response:
        services.get_destination_for(request.user, destination_id).delete()
        return Response({"deleted": True})


class DeliveryListView(APIView):
    @extend_schema(responses=responses({200: OpenApiTypes.OBJECT}))
    def get(self, request: Request) -> Response:
        """The caller's latest deliveries, newest first: the delivery log."""
        rows = Delivery.objects.filter(destination__owner=request.user) \
            .select_related("destination")[:LOG_PAGE]
        return Response({"deliveries": [d.to_dict() for d in rows]})


class ChatNotifyView(APIView):
    """"Notify me when this turn ends": which of the caller's destinations is told when
    a turn of the chat completes or ends in an error."""

    @extend_schema(responses=responses({200: OpenApiTypes.OBJECT}, 404))
    def get(self, request: Request, chat_id: str) -> Response:
        return Response(services.chat_notify(get_chat_for(request.user, chat_id)))

    @extend_schema(request=ChatNotifySerializer,
                   responses=responses({200: OpenApiTypes.OBJECT}, 404, body=True))
    def put(self, request: Request, chat_id: str) -> Response:
        chat = get_chat_for(request.user, chat_id)
        body = validated(ChatNotifySerializer, request)
        return Response(services.set_chat_notify(request.user, chat, body["destination"]))
