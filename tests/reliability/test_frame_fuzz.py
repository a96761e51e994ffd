"""Hostile socket frames: the parser and the consumer never crash on them.

``chats.frames.parse`` turns any text into a frame or raises ``GatewayError`` with code
``invalid_event``: nothing else, whatever the text (not JSON, any JSON value, frames of a
known type with random fields, deep nesting, huge numbers). The consumer answers a bad
frame with ``agent.error`` ``invalid_event`` on that socket only, stays open, and the next
valid message runs a turn as usual.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents import events as ev
from chats import frames
from gateway.errors import GatewayError
from tests.chats.wsutil import connect, fresh_runtime, new_chat, send, wait_idle  # noqa: F401

LIMIT = 64 * 1024
TYPES = ["user_message", "run", "tool_approval", "cancel", "dance", "", None, 1, ["cancel"]]

json_scalars = (st.none() | st.booleans() | st.integers() | st.text(max_size=20)
                | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
blocks = st.fixed_dictionaries({}, optional={"type": st.sampled_from(["text", "image_url",
                                                                      "x", 3]),
                                             "text": json_values, "image_url": json_values})
# Frames of a known shape with random fields: they reach past the JSON checks.
shaped = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "content": json_values | st.lists(blocks, max_size=3) | st.text(max_size=30),
        "stream": json_values,
        "data": json_values | st.fixed_dictionaries({}, optional={
            "message": json_values | st.text(max_size=20), "stream": json_values,
            "approved": json_values}),
        "verdicts": json_values | st.dictionaries(
            st.text(max_size=100), st.sampled_from(["allow", "deny", "allow_chat", "maybe"])
            | json_values, max_size=3),
    })
any_text = st.text(alphabet=st.characters(codec=None), max_size=300)  # lone surrogates too
frame_texts = (any_text | json_values.map(json.dumps) | shaped.map(json.dumps)
               | st.sampled_from(["[" * 100_000, "1" * 5000, '{"type": "cancel"' * 1000,
                                  "\ufeff{}", "\x00", "NaN", "-Infinity",
                                  '{"type": "cancel", "type": "dance"}']))


def _outcome(text: Any) -> frames.Frame | GatewayError:
    try:
        return frames.parse(text, LIMIT)
    except GatewayError as exc:
        return exc


def _assert_valid_frame(frame: Any) -> None:
    if isinstance(frame, frames.UserMessage):
        assert isinstance(frame.stream, bool)
        if isinstance(frame.content, str):
            assert frame.content.strip()
        else:
            assert frame.content and all(isinstance(b, dict) and isinstance(b["type"], str)
                                         for b in frame.content)
    elif isinstance(frame, frames.Approval):
        assert frame.verdicts is None or (
            frame.verdicts and set(frame.verdicts.values()) <= set(frames.VERDICTS))
    else:
        assert isinstance(frame, frames.Cancel)


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(frame_texts)
def test_parse_returns_a_frame_or_raises_invalid_event_and_nothing_else(text: str) -> None:
    outcome = _outcome(text)

    if isinstance(outcome, GatewayError):
        assert outcome.code == "invalid_event"
        assert outcome.status == 400
        assert 0 < len(outcome.message) < 400  # never echoes a whole hostile frame
    else:
        _assert_valid_frame(outcome)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.one_of(st.none(), st.binary(max_size=50).map(lambda b: b.decode("latin-1"))))
def test_binary_frames_and_latin_1_text_are_handled(text: str | None) -> None:
    outcome = _outcome(text)
    assert not isinstance(outcome, GatewayError) or outcome.code == "invalid_event"


def test_a_frame_over_the_limit_is_refused_before_it_is_parsed() -> None:
    for text in ("x" * (LIMIT + 1), "é" * (LIMIT // 2 + 1), "\ud800" * (LIMIT // 3 + 1)):
        outcome = _outcome(text)
        assert isinstance(outcome, GatewayError) and "too large" in outcome.message


def test_deep_nesting_and_huge_numbers_are_invalid_not_crashes() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000,
                 '{"type": "user_message", "content": "x", "stream": ' + "9" * 5000 + "}"):
        outcome = _outcome(text)
        assert isinstance(outcome, GatewayError) and outcome.code == "invalid_event"


# ------------------------------------------------------------------- through the socket


def _is_accepted(text: str) -> bool:
    return not isinstance(_outcome(text), GatewayError)


async def _events_until_turn_of(comm: Any, marker: str) -> list[dict[str, Any]]:
    """Every event up to the turn_complete of the turn whose text contains ``marker``."""
    got: list[dict[str, Any]] = []
    text = ""
    while True:
        try:
            event = await comm.receive_json_from(timeout=10)
        except TimeoutError:
            raise AssertionError(f"no turn with {marker!r}; got {got}") from None
        ev.check_event(event["type"], event["data"])
        got.append(event)
        if event["type"] == ev.TURN_STARTED:
            text = ""
        elif event["type"] == ev.TEXT_DELTA:
            text += event["data"]["text"]
        elif event["type"] == ev.TURN_COMPLETE and marker in text:
            return got


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(junk=st.lists(frame_texts.filter(lambda t: len(t) < 20_000), min_size=1, max_size=3))
async def test_random_frames_leave_the_socket_open_and_the_next_message_works(
        alice: Any, profile: Any, junk: list[str]) -> None:
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    try:
        for text in junk:  # as daphne passes them, empty text included
            await comm.send_input({"type": "websocket.receive", "text": text})
        await send(comm, {"type": "user_message", "content": "ping after junk"})

        events = await _events_until_turn_of(comm, "echo: ping after junk")

        errors = [e["data"] for e in events if e["type"] == ev.ERROR]
        rejected = [t for t in junk if not _is_accepted(t)]
        assert len([e for e in errors if e["code"] == "invalid_event"]) >= len(rejected)
        assert {e["code"] for e in errors} <= {"invalid_event"}, errors
        await wait_idle(chat.id)
    finally:
        await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_runtime")
async def test_empty_and_binary_frames_get_invalid_event_and_the_socket_stays(
        alice: Any) -> None:
    chat = await new_chat(alice.user)
    comm, _ = await connect(chat.id, alice.token)
    for message in ({"text": ""}, {"bytes": b"\x00\xff"}, {"bytes": b""}):  # as daphne sends
        await comm.send_input({"type": "websocket.receive", **message})
        event = await comm.receive_json_from(timeout=5)
        assert event["type"] == ev.ERROR and event["data"]["code"] == "invalid_event"
    await send(comm, {"type": "cancel"})
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()
