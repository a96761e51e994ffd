"""The hot REST routes under ASGI: no thread hop per middleware, one for the view.

Django's async handler hops to a thread for the ``request_started`` signal, for a sync
view and for closing the response (``request_finished``); before the inline middlewares
and ``OneHopAPIView`` every middleware hook and the rendering of a DRF response added
one each (17 hops for ``/health``). Counted, not timed.
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from asgiref import sync
from django.test import AsyncClient

# request_started, the view (dispatch and rendering in one), request_finished.
MOST_HOPS = 3


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    count = [0]
    original = sync.SyncToAsync.__call__

    async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting)
    yield count


class client_for:  # noqa: N801 - reads like the function it stands for
    """An AsyncClient that sends the actor's token with every request."""

    def __init__(self, actor: Any) -> None:
        self.client = AsyncClient()
        self.headers = {"authorization": f"Bearer {actor.token}"}

    async def get(self, path: str, data: Any = None) -> Any:
        return await self.client.get(path, data, headers=self.headers)

    async def post(self, path: str, data: Any, **kwargs: Any) -> Any:
        return await self.client.post(path, data, headers=self.headers, **kwargs)


@pytest.mark.django_db(transaction=True)
async def test_health_answers_with_one_hop_for_its_view(hops: list[int]) -> None:
    response = await AsyncClient().get("/health")
    assert response.status_code == 200 and response.json()["status"] in ("ok", "degraded")
    assert hops[0] <= MOST_HOPS


@pytest.mark.django_db(transaction=True)
async def test_creating_and_listing_chats_take_one_hop_each(alice: Any, hops: list[int]
                                                            ) -> None:
    client = client_for(alice)
    hops[0] = 0
    created = await client.post("/api/chats", {"title": "fast"}, content_type="application/json")
    assert created.status_code == 201 and created.json()["title"] == "fast"
    assert hops[0] <= MOST_HOPS
    hops[0] = 0
    listed = await client.get("/api/chats")
    assert listed.status_code == 200
    assert [c["title"] for c in listed.json()["chats"]] == ["fast"]
    assert hops[0] <= MOST_HOPS


@pytest.mark.django_db(transaction=True)
async def test_the_fast_path_keeps_errors_and_authentication(alice: Any) -> None:
    refused = await AsyncClient().get("/api/chats")
    assert refused.status_code == 401 and refused.json()["error"]
    bad = await client_for(alice).post("/api/chats", {"title": 5 * "x" * 100},
                                       content_type="application/json")
    assert bad.status_code == 400 and "title" in bad.json()["fields"]
    wrong = await client_for(alice).get("/api/chats", {"limit": "0"})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_request"


@pytest.fixture
def as_served(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[None]:
    """What ``serve`` sets up once its loop runs (``gateway.infra.serving``), undone after:
    views on kept threads (one here), Django's ``request_started`` receivers removed."""
    from django.core import signals
    from django.db import close_old_connections, reset_queries

    from gateway import infra

    settings.GATEWAY_REST_THREADS = 1
    monkeypatch.setattr(infra, "_rest_executor", None)
    infra.serving()
    try:
        yield
    finally:
        infra._serving = False
        signals.request_started.connect(close_old_connections)
        signals.request_started.connect(reset_queries)
        if infra._rest_executor is not None:
            from django.db import connections

            infra._rest_executor.submit(connections.close_all).result()
            infra._rest_executor.shutdown()


@pytest.mark.django_db(transaction=True)
async def test_under_serve_views_run_on_kept_threads_with_their_connection(
        as_served: None, hops: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a thread (and a database connection) made for each request: the view's thread
    is the same for the next request, and so is its connection (SQLite; PostgreSQL
    borrows one from the pool per request); the request's start costs no hop (the view,
    and Django's close of the response, are the two left)."""
    import threading

    from django.db import connection

    from gateway import views

    seen: list[tuple[str, Any]] = []
    real = views.health_report

    def spying() -> dict:
        report = real()  # runs queries: the thread has its connection from here
        seen.append((threading.current_thread().name, connection.connection))
        return report

    monkeypatch.setattr(views, "health_report", spying)
    for _ in range(2):
        hops[0] = 0
        response = await AsyncClient().get("/health")
        assert response.status_code == 200
        assert hops[0] <= 2
    assert [name.startswith("gateway-rest") for name, _ in seen] == [True, True]
    assert seen[0][0] == seen[1][0]  # the same thread
    if connection.vendor == "sqlite":
        assert seen[0][1] is seen[1][1]  # with its connection still open


@pytest.mark.django_db(transaction=True)
async def test_under_serve_a_request_starts_no_thread(
        as_served: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Django's ASGI handler opens a thread-sensitive context per request: its first
    sync call (closing the response) started a thread, joined at the end from another
    new thread. Under ``serve`` the context uses one kept thread
    (``gateway.infra.request_context``), through the real ASGI application."""
    import threading

    from asgiref.testing import ApplicationCommunicator

    from gateway import infra
    from gateway_project.asgi import application

    monkeypatch.setattr(infra, "_sensitive_executor", None)
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    async def get_health() -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/health", "raw_path": b"/health",
                 "query_string": b"", "root_path": "", "headers": [(b"host", b"testserver")],
                 "client": ("127.0.0.1", 1234), "server": ("testserver", 80)}
        comm = ApplicationCommunicator(application, scope)
        await comm.send_input({"type": "http.request", "body": b"", "more_body": False})
        head = await comm.receive_output(5)
        await comm.receive_output(5)  # the body
        await comm.wait(5)
        return head["status"]

    assert await get_health() == 200  # the kept threads start here
    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for _ in range(5):
        assert await get_health() == 200
    assert started == []
    if infra._sensitive_executor is not None:
        infra._sensitive_executor.shutdown()
