"""Structured logs: one JSON line per request and per turn, and never a secret."""

from __future__ import annotations

import json
import logging

import pytest

from agents import events as ev
from gateway.logs import JsonFormatter
from tests.chats.wsutil import (  # noqa: F401
    connect, fresh_runtime, new_chat, receive_until, send, wait_idle)


def test_a_request_is_one_json_line_with_user_status_and_duration(alice, caplog):
    caplog.set_level(logging.INFO, logger="gateway.request")
    alice.client.get("/api/chats?cursor=&limit=5")
    record = next(r for r in caplog.records if r.name == "gateway.request")
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "request" and line["method"] == "GET"
    assert line["path"] == "/api/chats" and line["status"] == 200
    assert line["user"] == "alice" and isinstance(line["duration_ms"], float)


def test_tokens_and_keys_never_reach_the_logs(alice, admin, caplog):
    caplog.set_level(logging.DEBUG)
    admin.client.post("/api/profiles", {"name": "p", "profile": {
        "provider": "openai", "model": "m", "api_key": "sk-very-secret-key-0000"}},
        format="json")
    alice.client.get(f"/api/chats?token={alice.token}")
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert alice.token not in text and admin.token not in text
    assert "sk-very-secret-key" not in text


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_a_turn_is_one_line_with_chat_duration_and_tokens(alice, profile, upstream,
                                                                caplog):
    from tests.fake_upstream import Text

    caplog.set_level(logging.INFO, logger="gateway.turn")
    upstream.enqueue(Text("hello", usage=(12, 1)))
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    await send(comm, {"type": "user_message", "content": "hi"})
    await receive_until(comm, ev.TURN_COMPLETE)
    await comm.disconnect()
    await wait_idle(chat.id)
    record = next(r for r in caplog.records if r.name == "gateway.turn")
    line = json.loads(JsonFormatter().format(record))
    assert line["chat_id"] == str(chat.id) and line["user_id"] == alice.user.id
    assert line["stop_reason"] == "end_turn" and line["input_tokens"] == 12
    assert line["output_tokens"] == 1 and line["duration_ms"] >= 0
    assert alice.token not in json.dumps(line)


def test_a_plain_request_line_shows_method_path_status_and_duration(alice, caplog):
    from gateway.logs import PlainFormatter

    caplog.set_level(logging.INFO, logger="gateway.request")
    alice.client.get(f"/api/chats?limit=5&token={alice.token}")
    record = next(r for r in caplog.records if r.name == "gateway.request")

    line = PlainFormatter().format(record)

    assert " INFO gateway.request GET /api/chats 200 " in line
    assert line.endswith(" user=alice") and " ms " in line
    assert alice.token not in line


def test_a_plain_line_without_request_fields_keeps_its_message(caplog):
    from gateway.logs import PlainFormatter

    record = logging.makeLogRecord({"name": "chats.turns", "levelname": "INFO",
                                    "msg": "recovered %d turn(s)", "args": (2,),
                                    "chat_id": "abc"})

    assert PlainFormatter().format(record).endswith(
        "INFO chats.turns recovered 2 turn(s) chat_id=abc")
