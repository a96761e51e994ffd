"""Thin views of the files API (docs/files.md): parse, call ``files.services``, answer."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator
from urllib.parse import quote

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from files import services
from gateway.api import StrictSerializer, validated
from gateway.errors import GatewayError
from gateway.schema import responses


def _owner(request: Request) -> Any:
    return services.owner_of(request.user, request.query_params.get("user"))


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise GatewayError("invalid_request", f"'{name}' must be a whole number of bytes.",
                           400, {name: "Not a whole number."})
    return int(raw)


class FileListView(APIView):
    """GET: a folder's entries and the quota (``?path=`` folder, the root by default)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=responses({200: OpenApiTypes.OBJECT}, 400, 403, 404))
    def get(self, request: Request) -> Response:
        owner = _owner(request)
        body = services.listing(owner, request.query_params.get("path"))
        return Response({**body, "quota": services.quota(owner)})


class QuotaSerializer(StrictSerializer):
    quota_bytes = serializers.IntegerField(min_value=0, max_value=2 ** 63 - 1, required=False,
                                           allow_null=True)
    quota_files = serializers.IntegerField(min_value=0, max_value=2 ** 63 - 1, required=False,
                                           allow_null=True)


class QuotaView(APIView):
    """GET: the workspace's usage, the quota in force, the user's own values and the
    defaults (``?user=`` for admins). PUT (admins): set the user's own quota; a null
    value goes back to the default."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(responses=responses({200: OpenApiTypes.OBJECT}, 403, 404))
    def get(self, request: Request) -> Response:
        return Response(services.quota_detail(_owner(request)))

    @extend_schema(request=QuotaSerializer,
                   responses=responses({200: OpenApiTypes.OBJECT}, 403, 404, body=True))
    def put(self, request: Request) -> Response:
        if not request.user.is_staff:
            raise GatewayError("forbidden", "Only admins set workspace quotas.", 403)
        owner = _owner(request)
        return Response(services.set_quota(owner, validated(QuotaSerializer, request)))


class PathSerializer(StrictSerializer):
    path = serializers.CharField()


class RenameSerializer(StrictSerializer):
    path = serializers.CharField()
    to = serializers.CharField()
    replace = serializers.BooleanField(default=False)


class FolderView(APIView):
    """POST {"path"}: make a folder (and its parents)."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(request=PathSerializer,
                   responses=responses({201: OpenApiTypes.OBJECT}, 403, 404, 409, body=True))
    def post(self, request: Request) -> Response:
        body = validated(PathSerializer, request)
        return Response(services.make_folder(_owner(request), body["path"]), status=201)


class RenameView(APIView):
    """POST {"path", "to", "replace"?}: rename or move within the workspace."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(request=RenameSerializer,
                   responses=responses({200: OpenApiTypes.OBJECT}, 403, 404, 409, body=True))
    def post(self, request: Request) -> Response:
        body = validated(RenameSerializer, request)
        return Response(services.rename(_owner(request), body["path"], body["to"],
                                        body["replace"]))


class FileContentView(APIView):
    """GET: download (Range supported). PUT: upload the body as the file, whole or as one
    part (``offset``, ``total``, ``upload``). DELETE: remove a file or folder."""

    permission_classes = [IsAuthenticated]
    parser_classes: list = []  # the body is the file: read as a stream, never parsed

    @extend_schema(responses=responses({200: OpenApiTypes.BINARY, 206: OpenApiTypes.BINARY},
                                       400, 403, 404))
    def get(self, request: Request) -> StreamingHttpResponse:
        download = services.open_download(_owner(request), request.query_params.get("path"),
                                          request.headers.get("Range"))
        response = StreamingHttpResponse(_stream(download), status=206 if download.partial
                                         else 200, content_type="application/octet-stream")
        response["Content-Length"] = str(download.length)
        response["Accept-Ranges"] = "bytes"
        response["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(download.name)}"
        response["X-Content-Type-Options"] = "nosniff"
        if download.partial:
            last = download.start + download.length - 1
            response["Content-Range"] = f"bytes {download.start}-{last}/{download.size}"
        return response

    @extend_schema(request=OpenApiTypes.BINARY,
                   responses=responses({201: OpenApiTypes.OBJECT, 202: OpenApiTypes.OBJECT}, 403, 404, 409, body=True))
    def put(self, request: Request) -> Response:
        owner = _owner(request)
        path = request.query_params.get("path")
        chunks = services.stream_chunks(request._request)
        total = _int_param(request, "total")
        if total is None:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
            return Response(services.store(owner, path, chunks, size), status=201)
        offset = _int_param(request, "offset") or 0
        body = services.store_part(owner, path, chunks, offset, total,
                                   request.query_params.get("upload"))
        return Response(body, status=201 if "path" in body else 202)

    @extend_schema(responses=responses({204: None}, 400, 403, 404))
    def delete(self, request: Request) -> Response:
        services.delete(_owner(request), request.query_params.get("path"))
        return Response(status=204)


class UploadView(APIView):
    """POST multipart: one or several files into the folder ``?path=`` (the root by
    default), each saved under its own name. The request is bounded by
    GATEWAY_MAX_BODY_BYTES; larger files go through PUT in parts."""

    permission_classes = [IsAuthenticated]
    parser_classes = [MultiPartParser]

    @extend_schema(responses=responses({201: OpenApiTypes.OBJECT}, 403, 404, 409, body=True))
    def post(self, request: Request) -> Response:
        owner = _owner(request)
        folder = request.query_params.get("path") or "."
        uploads = request.FILES.getlist("file") or request.FILES.getlist("files")
        if not uploads:
            raise GatewayError("invalid_request", "Send one or more files as the multipart "
                                                  "field 'file'.", 400, {"file": "Required."})
        return Response({"files": services.store_many(owner, folder, uploads)}, status=201)


async def _stream(download: services.Download) -> AsyncIterator[bytes]:
    """The file's bytes, read in a worker thread a chunk at a time: an async iterator, since
    Django under ASGI would read a sync one whole into memory first."""
    chunks = services.read_span(download.handle, download.length)
    try:
        while True:
            chunk = await asyncio.to_thread(next, chunks, b"")
            if not chunk:
                return
            yield chunk
    finally:
        download.handle.close()
