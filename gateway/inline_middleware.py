"""Django's own middlewares with their hooks run in the event loop under ASGI.

A module of its own: importing Django's auth and session middlewares needs the app
registry, which the logging setup (``gateway.logs``, importing ``gateway.middleware``)
runs before.
"""

from __future__ import annotations

from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponse
from django.middleware import clickjacking, common, csrf, security
class InlineHooks:
    """Django's own middlewares, with their hooks run in the event loop under ASGI.

    Django runs each hook of a classic (``MiddlewareMixin``) middleware through
    ``sync_to_async`` in async mode: a thread hop per hook, a dozen per request with the
    default stack, which was most of the time of ``/health``. The hooks of the middlewares
    below only look at headers, cookies and the already-read body; the rare ones that may
    touch the database (a session to save, messages stored in the session) say so in
    ``response_needs_thread`` and keep their hop. Mixed in before the Django class.
    """

    get_response: Callable[[HttpRequest], Any]

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)  # type: ignore[call-arg]
        process_view = getattr(self, "process_view", None)
        if iscoroutinefunction(get_response) and process_view is not None:
            # The handler wraps a sync process_view in sync_to_async; a coroutine it
            # awaits as it is.
            async def inline_view(*args: Any) -> Any:
                return process_view(*args)

            self.process_view = inline_view

    def response_needs_thread(self, request: HttpRequest, response: HttpResponse) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                response = await sync_to_async(self.process_response,
                                               thread_sensitive=True)(request, response)
            else:
                response = self.process_response(request, response)
        return response


class SecurityMiddleware(InlineHooks, security.SecurityMiddleware):
    pass


class SessionMiddleware(InlineHooks, sessions.SessionMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponse) -> bool:
        session = getattr(request, "session", None)
        return session is not None and (session.modified
                                        or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(InlineHooks, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(InlineHooks, csrf.CsrfViewMiddleware):
    pass


class AuthenticationMiddleware(InlineHooks, auth.AuthenticationMiddleware):
    pass  # request.user stays lazy: it is loaded (in a thread) only where it is used


class MessageMiddleware(InlineHooks, messages.MessageMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponse) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class XFrameOptionsMiddleware(InlineHooks, clickjacking.XFrameOptionsMiddleware):
    pass
