"""ASGI entry: HTTP goes to Django, ``/ws/<chat_id>`` to the chat consumer."""

import os

import django
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
django.setup(set_prefix=False)  # what get_asgi_application() does, then our handler


class GatewayASGIHandler(ASGIHandler):
    """Django's handler; each request's thread-sensitive context comes from
    ``gateway.infra.request_context`` (no thread started per request under serve)."""

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        from gateway.infra import request_context

        async with request_context():
            await self.handle(scope, receive, send)


django_asgi_app = GatewayASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from chats.consumers import ChatConsumer  # noqa: E402
from mcp_servers.runtime import start_on_first_request  # noqa: E402

application = start_on_first_request(ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": URLRouter([
        re_path(r"^ws/(?P<chat_id>[^/]+)/?$", ChatConsumer.as_asgi()),
    ]),
}))
