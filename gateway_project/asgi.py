"""ASGI entry: HTTP goes to Django, ``/ws/<chat_id>`` to the chat consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
django_asgi_app = get_asgi_application()

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
