"""The browser dashboard (see dashboard/templates)."""

from django.http import HttpRequest, HttpResponse


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<!doctype html><title>Agent gateway</title>"
                        "<p>The gateway is running. API docs: <a href='/api/docs/'>/api/docs/</a>."
                        " Admin: <a href='/admin/'>/admin/</a>.</p>")
