"""``GET /api/asyncapi.json``: the WebSocket contract as an AsyncAPI 3.0 document.

Public like ``/api/schema/``: it describes the API, it holds no data. The document is
made by ``agents.asyncapi`` from the event declarations in ``agents.events``, so what is
served is what the consumer sends.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import asyncapi


class AsyncApiView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    # Left out of the OpenAPI schema like /api/schema/ itself (the schema's description
    # links it): it is a document about the API, not an operation of it.
    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        return Response(asyncapi.document())
