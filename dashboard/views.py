"""The browser dashboard: one page (``/``) whose script talks to the REST API and the
socket with a bearer token, Django's login/logout for password sign-in, the view that
turns a signed-in session into a short-lived token, and static files for ``serve``.

The page itself holds no data: everything it shows comes from the API with the token
the browser keeps in ``sessionStorage``, so a token user and a password user see the
same thing.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.contrib.staticfiles.views import serve as serve_static
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.auth import create_token
from gateway.errors import method_not_allowed
from gateway.models import ApiToken

DASHBOARD_TOKEN_NAME = "dashboard"
DASHBOARD_TOKEN_TTL = dt.timedelta(hours=12)


def _content_security_policy(request: HttpRequest) -> str:
    """Only this origin's scripts and styles run, whatever a model reply contains; the
    socket goes to this host."""
    host = request.get_host()
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        f"connect-src 'self' ws://{host} wss://{host}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def _with_csp(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = _content_security_policy(request)
    response["Referrer-Policy"] = "same-origin"
    return response


@never_cache
def index(request: HttpRequest) -> HttpResponse:
    """The single-page dashboard; the script routes with the URL hash."""
    user = request.user if request.user.is_authenticated else None
    config = {
        "session_user": user.get_username() if user else None,
        "version": settings.VERSION,
    }
    response = render(request, "dashboard/index.html", {"config": config})
    return _with_csp(request, response)


class DashboardLoginView(LoginView):
    """Django's login with the dashboard's template (and the same CSP)."""

    template_name = "dashboard/login.html"
    redirect_authenticated_user = True

    def dispatch(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        return _with_csp(request, super().dispatch(request, *args, **kwargs))


@never_cache
def session_token(request: HttpRequest) -> HttpResponse:
    """Mint a bearer token for the signed-in session (CSRF-checked by the middleware).

    The browser keeps it in ``sessionStorage`` and revokes it at sign-out; the expiry
    bounds the damage when it does not get the chance to.
    """
    if request.method != "POST":  # a JSON route: not require_POST's empty 405
        return method_not_allowed(request, ["POST"])
    user = request.user
    if not user.is_authenticated or not user.is_active:
        return JsonResponse({"error": "not_authenticated",
                             "message": "Sign in with your username and password first."},
                            status=401)
    # Tokens of closed tabs expire but are only deleted when presented; tidy them here.
    ApiToken.objects.filter(user=user, name=DASHBOARD_TOKEN_NAME,
                            expiry__lt=timezone.now()).delete()
    row, token = create_token(user, DASHBOARD_TOKEN_NAME, DASHBOARD_TOKEN_TTL)
    return JsonResponse(dict(row.to_dict(), token=token), status=201)


class MeView(APIView):
    """Who the bearer token belongs to, so the page knows whether to show admin pages."""

    def get(self, request: Request) -> Response:
        user = request.user
        return Response({"username": user.get_username(), "is_staff": bool(user.is_staff)})


def static(request: HttpRequest, path: str) -> HttpResponse:
    """Static files (the dashboard's and the admin's) from the apps, also without DEBUG:
    ``serve`` runs daphne alone, with no web server in front to serve them. Browsers
    revalidate on each load, so a new version shows at once."""
    response = serve_static(request, path, insecure=True)
    response["Cache-Control"] = "no-cache"
    return response
