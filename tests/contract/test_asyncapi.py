"""Real frames of real turns match the AsyncAPI document, and drift is caught.

One ``serve`` process (``tests/e2e/server.py``) talks to the fake upstream; the
``websockets`` client runs turns that cover streamed and whole text, approved, denied and
policy-denied tool calls (the gateway's and Clotho's frames), a bad tool call, an approval
timeout, an upstream failure, a cancel with a queued message behind it, bad frames, a
reconnect with ``?since=``, a second socket joining mid-turn, and a compaction. Every frame
received is validated against the payload schema for its type in the document the server
serves at ``/api/asyncapi.json``, and every frame sent against its client frames.

The drift tests show the check bites: a field renamed in the code (the loop's source,
rewritten and run for real) or in a received frame fails validation, and so do real frames
when the declaration is renamed instead.
"""

from __future__ import annotations

import asyncio
import json
import sys
import types
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import httpx
import jsonschema
import pytest
import websockets

from agents import asyncapi
from agents import events as ev
from tests.e2e.server import ServeProcess
from tests.fake_upstream import FakeUpstream, HttpError, Text, ToolCalls

APPROVAL_TIMEOUT = 8.0  # long enough for a loaded machine to answer the other requests
RECV_TIMEOUT = 20.0
START_TIMEOUT = 120.0

# The module's server and scenarios run in the first test's setup.
pytestmark = pytest.mark.timeout(600)


# ------------------------------------------------------------------ validation helpers

def frame_errors(doc: dict[str, Any], frame: dict[str, Any]) -> list[str]:
    """Why ``frame`` does not match the document (empty when it does)."""
    try:
        schema = asyncapi.message_schema(doc, frame.get("type"))
    except KeyError as exc:
        return [str(exc)]
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}"
            for e in validator.iter_errors(frame)]


def client_frame_matches(doc: dict[str, Any], frame: dict[str, Any]) -> bool:
    for ref in doc["operations"]["receiveFrames"]["messages"]:
        message = doc["components"]["messages"][ref["$ref"].rsplit("/", 1)[1]]
        if jsonschema.Draft7Validator(message["payload"]).is_valid(frame):
            return True
    return False


# ------------------------------------------------------------------------ the session

class Recorder:
    """Every frame received on any socket and every frame sent, in order; the document
    the server serves at /api/asyncapi.json; the close codes of refused sockets."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.served: dict[str, Any] = {}
        self.close_codes: list[int] = []


class Socket:
    def __init__(self, ws: Any, recorder: Recorder) -> None:
        self.ws = ws
        self.recorder = recorder

    async def recv(self) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), RECV_TIMEOUT))
        self.recorder.received.append(frame)
        return frame

    async def until(self, event_type: str, **data: Any) -> list[dict[str, Any]]:
        """Frames up to the first of ``event_type`` whose data has these values."""
        got = []
        while True:
            frame = await self.recv()
            got.append(frame)
            if frame["type"] == event_type and all(
                    frame["data"].get(k) == v for k, v in data.items()):
                return got

    async def send(self, frame: dict[str, Any]) -> None:
        self.recorder.sent.append(frame)
        await self.ws.send(json.dumps(frame))


def types_of(frames: list[dict[str, Any]]) -> list[str]:
    return [f["type"] for f in frames]


def only(frames: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] == event_type]


async def _open(server: ServeProcess, chat_id: str, recorder: Recorder,
                query: str = "") -> Any:
    ws = await websockets.connect(
        f"{server.ws_url}/ws/{chat_id}?token={server.admin_token}{query}", max_size=None)
    return Socket(ws, recorder)


async def _turns(server: ServeProcess, upstream: FakeUpstream, chat_id: str,
                 recorder: Recorder) -> None:
    """The scenarios, in one chat; each asserts what it must have produced."""
    main = await _open(server, chat_id, recorder)
    state = await main.recv()
    assert state["type"] == ev.STATE and state["data"]["running"] is False

    # Streamed text.
    upstream.enqueue(Text("Hello there, streamed reply.", chunk_size=4))
    await main.send({"type": "user_message", "content": "hello"})
    got = await main.until(ev.TURN_COMPLETE)
    assert types_of(got)[:2] == [ev.QUEUED, ev.TURN_STARTED] and only(got, ev.TEXT_DELTA)

    # Whole text (stream false), content as blocks.
    upstream.enqueue(Text("A whole reply."))
    await main.send({"type": "user_message", "stream": False,
                     "content": [{"type": "text", "text": "whole, please"}]})
    got = await main.until(ev.TURN_COMPLETE)
    assert only(got, ev.TEXT)[0]["data"]["text"] == "A whole reply."

    # A call that needs approval; a second socket joins while it waits and approves it.
    upstream.enqueue(ToolCalls([("call_ok", "bash", {"command": "echo contract"})]),
                     Text("It printed contract."))
    await main.send({"type": "user_message", "content": "run echo"})
    await main.until(ev.TOOL_REQUEST)
    second = await _open(server, chat_id, recorder)
    joined = await second.recv()
    assert joined["type"] == ev.STATE and joined["data"]["running"] is True
    assert [c["id"] for c in joined["data"]["pending_tool_calls"]] == ["call_ok"]
    await second.send({"type": "tool_approval", "verdicts": {"call_ok": "allow"}})
    got = await main.until(ev.TURN_COMPLETE)
    assert only(got, ev.TOOL_USE)[0]["data"]["tool_use_id"] == "call_ok"
    assert only(got, ev.TOOL_RESULT)[0]["data"]["content"].strip() == "contract"
    await second.until(ev.TURN_COMPLETE)
    await second.ws.close()

    # The user denies a call.
    upstream.enqueue(ToolCalls([("call_no", "bash", {"command": "echo never"})]),
                     Text("Understood."))
    await main.send({"type": "user_message", "content": "try again"})
    await main.until(ev.TOOL_REQUEST)
    await main.send({"type": "tool_approval", "verdicts": {"call_no": "deny"}})
    got = await main.until(ev.TURN_COMPLETE)
    assert only(got, ev.TOOL_RESULT)[0]["data"]["is_error"] is True

    # Clotho's frames: run, and tool_approval with data.approved.
    upstream.enqueue(ToolCalls([("call_cl", "bash", {"command": "echo clotho"})]),
                     Text("Clotho done."))
    await main.send({"type": "run", "data": {"message": "clotho style", "stream": False}})
    await main.until(ev.TOOL_REQUEST)
    await main.send({"type": "tool_approval", "data": {"approved": True}})
    got = await main.until(ev.TURN_COMPLETE)
    assert only(got, ev.TOOL_RESULT)[0]["data"]["content"].strip() == "clotho"
    assert only(got, ev.TEXT)

    # The policy denies write without asking.
    upstream.enqueue(ToolCalls([("call_w", "write", {"path": "x.txt", "content": "x"})]),
                     Text("Not allowed, then."))
    await main.send({"type": "user_message", "content": "write a file"})
    got = await main.until(ev.TURN_COMPLETE)
    assert only(got, ev.TOOL_DENIED)[0]["data"]["tool_calls"][0]["id"] == "call_w"

    # Arguments that are not JSON.
    upstream.enqueue(ToolCalls([("call_bad", "bash", "{not json")]), Text("Oops."))
    await main.send({"type": "user_message", "content": "bad arguments"})
    got = await main.until(ev.TURN_COMPLETE)
    assert only(got, ev.ERROR)[0]["data"]["code"] == "invalid_tool_call"

    # Nobody answers a tool request.
    upstream.enqueue(ToolCalls([("call_late", "bash", {"command": "echo late"})]),
                     Text("Timed out."))
    await main.send({"type": "user_message", "content": "ask and wait"})
    got = await main.until(ev.TURN_COMPLETE)
    assert "approval_timeout" in [e["data"]["code"] for e in only(got, ev.ERROR)]

    # The upstream fails (serve runs with no retries).
    upstream.enqueue(HttpError(500))
    await main.send({"type": "user_message", "content": "fail upstream"})
    got = await main.until(ev.TURN_COMPLETE)
    assert only(got, ev.ERROR)[0]["data"]["code"] == "upstream_error"
    assert got[-1]["data"]["stop_reason"] == "error"

    # A long reply is cancelled while a second message waits in the queue; sockets
    # joining meanwhile see the text streamed so far and the queue.
    long = Text("one two three four five six seven", pause_after=2)
    upstream.enqueue(long, Text("The queued message ran."))
    try:
        await main.send({"type": "user_message", "content": "long one"})
        await main.until(ev.TEXT_DELTA)
        await asyncio.to_thread(long.paused.wait, RECV_TIMEOUT)
        third = await _open(server, chat_id, recorder)
        state = (await third.recv())["data"]
        assert state["running"] is True and state["partial_text"]
        await third.ws.close()
        await main.send({"type": "user_message", "content": "queued one"})
        queued = (await main.until(ev.QUEUED, position=1))[-1]
        fourth = await _open(server, chat_id, recorder)
        assert (await fourth.recv())["data"]["queued"] == 1
        await fourth.ws.close()
        await main.send({"type": "cancel"})
        await main.until(ev.CANCELLED)
        got = await main.until(ev.TURN_COMPLETE)
        assert only(got, ev.TURN_STARTED)[0]["data"]["message_id"] == \
            queued["data"]["message_id"]
    finally:
        long.release.set()

    # Bad frames: not JSON, and a verdict for a call nobody asked about.
    for bad in ("this is not json", json.dumps({"type": "tool_approval",
                                                "verdicts": {"ghost": "allow"}})):
        await main.ws.send(bad)
        error = await main.recv()
        assert error["type"] == ev.ERROR and error["data"]["code"] == "invalid_event"

    # Compaction by REST: its events reach the socket.
    with server.client() as http:
        response = await asyncio.to_thread(http.post, f"/api/chats/{chat_id}/compact")
    assert response.status_code == 200, response.text
    got = await main.until(ev.CONTEXT_COMPACTED)
    assert only(got, ev.COMPACTION_STARTED)
    await main.ws.close()

    # Reconnect with since: the window keeps the last two turns, so state says the
    # replay from seq 1 is not complete; what is kept follows, in order.
    again = await _open(server, chat_id, recorder, "&since=1")
    state = await again.recv()
    assert state["data"]["replay_complete"] is False
    replayed = await again.until(ev.CONTEXT_COMPACTED)
    seqs = [f["seq"] for f in replayed]
    assert seqs[0] > 2 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    await again.ws.close()


async def _close_codes(server: ServeProcess, chat_id: str) -> list[int]:
    codes = []
    for path in (f"/ws/{chat_id}?token=wrong", f"/ws/{uuid.uuid4()}?token={server.admin_token}"):
        async with websockets.connect(server.ws_url + path) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), RECV_TIMEOUT)
            codes.append(closed.value.rcvd.code)
    return codes


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, upstream_server: FakeUpstream
            ) -> Iterator[Recorder]:
    """Run every scenario once against a real server; the frames it saw."""
    upstream_server.clear()
    env = {"GATEWAY_UPSTREAM_RETRIES": "0", "GATEWAY_APPROVAL_TIMEOUT": str(APPROVAL_TIMEOUT),
           "GATEWAY_COMPACTION_KEEP_EXCHANGES": "1"}
    recorder = Recorder()
    server = ServeProcess(tmp_path_factory.mktemp("contract") / "data", env=env)
    # A generous start budget: the machine is shared, and a loaded one starts slowly.
    server.start(timeout=START_TIMEOUT)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as anonymous:
            served = anonymous.get("/api/asyncapi.json")
        assert served.status_code == 200
        recorder.served = served.json()
        with server.client() as http:
            assert http.post("/api/profiles", json={"name": "fake", "profile": {
                "provider": "openai", "model": "fake-model", "base_url": upstream_server.url,
                "api_key": "sk-contract-1"}}).status_code == 201
            assert http.put("/api/permissions", json={
                "mode": "interactive", "tool_overrides": {"write": "deny"}}).status_code == 200
            chat_id = http.post("/api/chats", json={"title": "contract"}).json()["chat_id"]
        asyncio.run(_turns(server, upstream_server, chat_id, recorder))
        recorder.close_codes = asyncio.run(_close_codes(server, chat_id))
    finally:
        server.stop()
    upstream_server.clear()
    yield recorder


# ---------------------------------------------------------------------------- the tests

def test_the_server_serves_the_generated_document(session: Recorder) -> None:
    assert session.served == asyncapi.document()


def test_every_frame_of_real_turns_matches_the_served_document(session: Recorder) -> None:
    recorder = session
    doc = recorder.served
    assert len(recorder.received) > 50
    failures = {i: (frame, errors) for i, frame in enumerate(recorder.received)
                if (errors := frame_errors(doc, frame))}
    assert failures == {}


def test_every_declared_event_was_seen_for_real(session: Recorder) -> None:
    """Each event of the document is exercised above; a newly declared event needs a
    scenario here, or this fails and says which."""
    recorder = session
    assert set(ev.EVENTS) - set(types_of(recorder.received)) == set()


def test_every_frame_sent_matches_a_client_frame_of_the_document(session: Recorder) -> None:
    recorder = session
    doc = recorder.served
    kinds = {f["type"] for f in recorder.sent}
    assert kinds == {"user_message", "run", "tool_approval", "cancel"}
    assert [f for f in recorder.sent if not client_frame_matches(doc, f)] == []
    assert not client_frame_matches(doc, {"type": "tool_approval", "verdicts": {"c": "maybe"}})


def test_close_codes_are_documented(session: Recorder) -> None:
    codes = session.close_codes
    assert codes == [4001, 4004]
    documented = session.served["channels"]["chat"]["x-close-codes"]
    assert {str(c) for c in codes} <= set(documented)


# ----------------------------------------------------------------------------- drift

def test_a_field_renamed_in_a_real_frame_fails(session: Recorder) -> None:
    """Each kind of real frame, with one data field renamed as a code change would, no
    longer matches."""
    recorder = session
    doc = recorder.served
    seen: dict[str, dict[str, Any]] = {}
    for frame in recorder.received:
        seen.setdefault(frame["type"], frame)
    for event_type, frame in seen.items():
        for name in ev.EVENTS[event_type].fields:
            if name.name not in frame["data"]:
                continue
            data = dict(frame["data"])
            data[name.name + "_renamed"] = data.pop(name.name)
            assert frame_errors(doc, {**frame, "data": data}), (event_type, name.name)


def test_a_declaration_renamed_but_not_the_code_fails(
        session: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = session
    declared = ev.EVENTS[ev.TOOL_RESULT]
    renamed = tuple(replace(f, name="call_id") if f.name == "tool_use_id" else f
                    for f in declared.fields)
    monkeypatch.setitem(ev.EVENTS, ev.TOOL_RESULT, replace(declared, fields=renamed))
    doc = asyncapi.document()
    results = only(recorder.received, ev.TOOL_RESULT)
    assert results and all(frame_errors(doc, f) for f in results)


def _loop_with_renamed_delta(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """``agents.loop`` as if someone renamed text_delta's ``text`` to ``chunk`` in the
    code and not in ``agents/events.py``."""
    import agents.loop

    source = Path(agents.loop.__file__).read_text()
    original = 'ev.TEXT_DELTA, {"text": text}'
    assert source.count(original) == 1, "the loop's text_delta line changed: update this"
    module = types.ModuleType("renamed_loop")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look it up
    exec(compile(source.replace(original, 'ev.TEXT_DELTA, {"chunk": text}'),
                 "renamed_loop.py", "exec"), module.__dict__)
    return module


async def _frames_of_a_turn(loop_module: Any, upstream: FakeUpstream) -> list[dict[str, Any]]:
    """Run a real turn of ``loop_module`` against the fake upstream; its envelopes."""
    from agents.providers import ProviderConfig
    from chats.hub import encode

    frames: list[dict[str, Any]] = []

    async def emit(event_type: str, data: dict[str, Any]) -> None:
        frames.append(json.loads(encode(event_type, data, len(frames) + 1)))

    class NoStore:
        async def save_assistant(self, *args: Any) -> None:
            return None

        async def save_tool_result(self, *args: Any) -> None:
            return None

    async def decide(calls: list[Any]) -> dict[str, Any]:
        return {}

    upstream.enqueue(Text("Renamed fields are caught.", chunk_size=3))
    spec = loop_module.TurnSpec(
        provider=ProviderConfig("fake", "openai", "fake-model", upstream.url, "sk-x"),
        messages=[{"role": "user", "content": "hi"}], tools=[], tool_env=None, retries=0)
    await loop_module.run_turn(spec, emit, decide, NoStore())
    return frames


def test_a_field_renamed_in_the_code_fails(upstream: FakeUpstream,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import agents.loop

    doc = asyncapi.document()
    good = asyncio.run(_frames_of_a_turn(agents.loop, upstream))
    assert ev.TEXT_DELTA in types_of(good)
    assert [e for f in good if (e := frame_errors(doc, f))] == []

    drifted = asyncio.run(_frames_of_a_turn(_loop_with_renamed_delta(monkeypatch), upstream))
    deltas = only(drifted, ev.TEXT_DELTA)
    assert deltas and "chunk" in deltas[0]["data"]
    for frame in deltas:
        errors = frame_errors(doc, frame)
        assert any("'text' is a required property" in e for e in errors), errors
