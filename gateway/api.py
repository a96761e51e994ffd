"""Small pieces shared by every REST view: role permission, body parsing, and the base
of the hot views (one thread hop per request)."""

from __future__ import annotations

from typing import Any, Callable

from django.http import HttpRequest, HttpResponse
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from gateway import infra


class IsAdminOrReadOnly(permissions.BasePermission):
    """Members read configuration; only admins (staff users) change it."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or bool(user.is_staff)


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know, also when nested in another serializer (``validated``
    only sees the top level)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = set(data) - set(self.fields)
            if unknown:
                raise serializers.ValidationError({key: "Unknown field."
                                                   for key in sorted(unknown)})
        return super().to_internal_value(data)


def validated(serializer_class: type[serializers.Serializer], request: Request,
              *, partial: bool = False) -> dict[str, Any]:
    """The request body checked by a serializer; a bad body raises a 400 with fields."""
    data = request.data
    if not isinstance(data, dict):
        raise serializers.ValidationError({"body": "Send a JSON object."})
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    unknown = set(data) - set(serializer.fields)
    if unknown:
        raise serializers.ValidationError({key: "Unknown field." for key in sorted(unknown)})
    return dict(serializer.validated_data)


class OneHopAPIView(APIView):
    """An ``APIView`` that costs one thread hop per request under ASGI instead of two.

    Django runs a sync view in a thread and then, back in the event loop, renders its DRF
    ``Response`` with a second hop (it does so for anything with a ``render`` method,
    rendered or not). This view is async to Django: it runs DRF's whole dispatch
    (authentication, permissions, the handler, the exception handler) and the rendering
    in one hop, and returns the result as a plain, rendered ``HttpResponse``. Under the
    sync test client Django runs it through ``async_to_sync``; the handlers stay sync.
    """

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., Any]:
        view = super().as_view(**initkwargs)

        def dispatch_and_render(request: HttpRequest, *args: Any, **kwargs: Any
                                ) -> HttpResponse:
            response = view(request, *args, **kwargs)
            if callable(getattr(response, "render", None)):
                response = _plain(response.render())
            return response

        in_thread = infra.view_runner(dispatch_and_render)  # kept threads under serve

        async def one_hop_view(request: HttpRequest, *args: Any, **kwargs: Any
                               ) -> HttpResponse:
            return await in_thread(request, *args, **kwargs)

        # What Django, DRF and the schema generator read off a view: csrf_exempt, cls,
        # initkwargs, view_class.
        one_hop_view.__dict__.update(view.__dict__)
        return one_hop_view


def _plain(response: Any) -> HttpResponse:
    """A rendered DRF response as a plain ``HttpResponse`` with the same status, headers,
    cookies and body. ``renderer_context`` stays: the request log reads the user there."""
    plain = HttpResponse(response.content, status=response.status_code,
                         headers=dict(response.headers))
    plain.cookies = response.cookies
    plain.renderer_context = getattr(response, "renderer_context", {})  # type: ignore[attr-defined]
    return plain
