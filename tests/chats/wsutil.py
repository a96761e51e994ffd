"""Helpers for socket tests: connect a communicator, read events until one arrives."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from agents import events as ev
from chats import turns
from chats.models import Chat
from gateway_project.asgi import application


async def connect(chat_id: Any, token: str, since: int | None = None,
                  expect_state: bool = True) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    path = f"/ws/{chat_id}?token={token}" + (f"&since={since}" if since is not None else "")
    comm = WebsocketCommunicator(application, path)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    state: dict[str, Any] = {}
    if expect_state:
        state = await comm.receive_json_from(timeout=5)
        assert state["type"] == ev.STATE, state
    return comm, state


async def receive_until(comm: WebsocketCommunicator, event_type: str,
                        timeout: float = 10) -> list[dict[str, Any]]:
    """Every event up to and including the first of ``event_type``."""
    got: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        try:
            if remaining <= 0:
                raise TimeoutError
            event = await comm.receive_json_from(timeout=remaining)
        except TimeoutError:
            raise AssertionError(f"no {event_type} within {timeout}s; got "
                                 f"{[e['type'] for e in got]}") from None
        ev.check_event(event["type"], event["data"])
        got.append(event)
        if event["type"] == event_type:
            return got


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == event_type]


def text_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["data"]["text"] for e in events if e["type"] == ev.TEXT_DELTA)


def assert_seq_contiguous(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


async def send(comm: WebsocketCommunicator, frame: dict[str, Any] | str) -> None:
    if isinstance(frame, str):
        await comm.send_to(text_data=frame)
    else:
        await comm.send_to(text_data=json.dumps(frame))


@database_sync_to_async
def new_chat(owner: Any, **fields: Any) -> Chat:
    return Chat.objects.create(owner=owner, **fields)


async def wait_idle(chat_id: Any, timeout: float = 10) -> None:
    """Wait until no turn of this process runs for the chat."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    manager = turns.get_manager()
    while str(chat_id) in manager.tasks:
        if loop.time() > deadline:
            raise AssertionError("the turn did not finish")
        await asyncio.sleep(0.02)


@pytest.fixture
async def fresh_runtime() -> Any:
    """A new turn manager and an empty channel layer for each socket test."""
    turns._manager = None
    layer = get_channel_layer()
    await layer.flush()
    yield
    manager = turns._manager
    if manager:
        # A drain whose turn ended is in its last database calls (the lock's release):
        # cancelling it does not stop its thread, and the test database would be flushed
        # under it (SQLite's shared in-memory database then refuses: "table is locked").
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2
        while manager.drains_between_turns() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        await manager.shutdown()
    turns._manager = None
