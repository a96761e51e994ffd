"""Streamed text reaches ``on_delta`` whole and in order, its first piece on its own.

Through the real ``openai`` client against the fake upstream over HTTP, and the relay
alone with a clock the test drives (so the time bound is checked without timing).
"""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from agents.providers import DeltaRelay, ProviderConfig, UpstreamError, call_model
from tests.fake_upstream import CutStream, FakeUpstream, Text, ToolCalls

PIECES = [f"w{i} " for i in range(300)]


def config(upstream: FakeUpstream) -> ProviderConfig:
    return ProviderConfig(name="fake", provider="openai", model="fake-model",
                          base_url=upstream.url)


async def stream(upstream: FakeUpstream, on_delta=None, max_wait: float = 0.005):
    deltas: list[str] = []

    async def record(text: str) -> None:
        deltas.append(text)
        if on_delta:
            await on_delta(text)

    reply = await call_model(config(upstream), [{"role": "user", "content": "hi"}], [],
                             stream=True, on_delta=record, timeout=10, retries=0,
                             max_wait=max_wait)
    return reply, deltas


async def test_a_fast_upstream_gets_its_first_piece_out_alone(upstream: FakeUpstream) -> None:
    upstream.enqueue(Text("".join(PIECES), chunks=PIECES))
    reply, deltas = await stream(upstream)
    assert deltas[0] == PIECES[0]
    assert "".join(deltas) == "".join(PIECES) == reply.text
    assert len(deltas) > 1


async def test_a_slow_consumer_gets_everything_in_order_joined(upstream: FakeUpstream) -> None:
    upstream.enqueue(Text("".join(PIECES), chunks=PIECES))

    async def slow(text: str) -> None:
        await asyncio.sleep(0.003)  # a busy socket: chunks gather meanwhile

    reply, deltas = await stream(upstream, slow)
    assert deltas[0] == PIECES[0]
    assert "".join(deltas) == "".join(PIECES) == reply.text
    assert len(deltas) < len(PIECES)  # joined while the previous delta was sent


async def test_every_model_call_of_a_turn_flushes_its_own_first_piece(
        upstream: FakeUpstream) -> None:
    upstream.enqueue(ToolCalls([("c1", "bash", {"command": "true"})], content="Let me see. "),
                     Text("".join(PIECES[:50]), chunks=PIECES[:50]))
    first, deltas = await stream(upstream)
    assert deltas[0] == "Let " and "".join(deltas) == "Let me see. "
    assert [c.name for c in first.tool_calls] == ["bash"]
    _, deltas = await stream(upstream)
    assert deltas[0] == PIECES[0] and "".join(deltas) == "".join(PIECES[:50])


async def test_a_cut_stream_keeps_exactly_the_text_that_was_sent(
        upstream: FakeUpstream) -> None:
    upstream.enqueue(CutStream("one two three four five", after_chunks=3))
    deltas: list[str] = []

    async def record(text: str) -> None:
        deltas.append(text)

    with pytest.raises(UpstreamError) as caught:
        await call_model(config(upstream), [{"role": "user", "content": "hi"}], [],
                         stream=True, on_delta=record, timeout=10, retries=0)
    assert caught.value.partial == "".join(deltas) == "one two three "


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_text_never_waits_past_the_bound_while_the_reader_keeps_parsing() -> None:
    clock = Clock()
    sent: list[tuple[float, str]] = []

    async def on_delta(text: str) -> None:
        sent.append((clock.now, text))

    relay = DeltaRelay(on_delta, max_wait=0.005, clock=clock)

    async def reader() -> None:
        # One long read: 40 pieces parsed 1 ms apart without the reader suspending.
        for i in range(40):
            clock.now = i * 0.001
            relay.texts.append(f"{i} ")
            await relay.parsed()
        relay.wake()

    await relay.run(reader())
    assert sent[0] == (0.0, "0 ")
    assert "".join(t for _, t in sent) == "".join(f"{i} " for i in range(40))
    # Each delta went out at most the bound (plus the one piece parsing) after its
    # oldest piece was parsed, instead of all at the end of the read.
    assert len(sent) >= 6
    for when, text in sent[1:]:
        oldest = int(text.split()[0]) * 0.001
        assert when - oldest <= 0.005 + 0.001 + 1e-9


async def test_random_pacing_loses_and_reorders_nothing() -> None:
    rng = random.Random(17)
    pieces = [f"p{i}-" for i in range(500)]
    got: list[str] = []

    async def on_delta(text: str) -> None:
        got.append(text)
        if rng.random() < 0.3:
            await asyncio.sleep(0)

    relay = DeltaRelay(on_delta, max_wait=0.0)

    async def reader() -> None:
        for piece in pieces:
            relay.texts.append(piece)
            await relay.parsed()
            if rng.random() < 0.2:
                relay.wake()
                await asyncio.sleep(0)
        relay.wake()

    await relay.run(reader())
    assert got[0] == pieces[0]
    assert "".join(got) == "".join(pieces)
    assert relay.sent_text() == "".join(pieces)


async def test_a_reader_error_comes_after_the_text_parsed_before_it() -> None:
    got: list[str] = []

    async def on_delta(text: str) -> None:
        got.append(text)

    relay = DeltaRelay(on_delta, max_wait=1.0)

    async def reader() -> None:
        for piece in ("a", "b", "c"):
            relay.texts.append(piece)
            await relay.parsed()
        raise UpstreamError("broke")

    with pytest.raises(UpstreamError):
        await relay.run(reader())
    assert "".join(got) == "abc" and got[0] == "a"


# --- the connection goes back to the pool -------------------------------------------

class CountingUpstream:
    """A bare HTTP/1.1 server streaming one short answer per request over keep-alive
    connections; counts the connections it accepted. With ``hold``, the body stays
    open after ``[DONE]`` (its last chunk never comes)."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> "CountingUpstream":
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                             b"transfer-encoding: chunked\r\n\r\n")
                chunk = {"choices": [{"index": 0, "delta": {"content": "hello"},
                                      "finish_reason": "stop"}]}
                for event in (f"data: {json.dumps(chunk)}\n\n", "data: [DONE]\n\n"):
                    data = event.encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                if self.hold:
                    await writer.drain()
                    await asyncio.sleep(3600)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()


async def call(base_url: str) -> str:
    async def ignore(text: str) -> None:
        pass

    reply = await call_model(ProviderConfig(name="c", provider="openai", model="m",
                                            base_url=base_url),
                             [{"role": "user", "content": "hi"}], [], stream=True,
                             on_delta=ignore, timeout=30, retries=0)
    return reply.text


async def test_consecutive_streamed_calls_reuse_one_connection() -> None:
    """The body is read to its end after ``[DONE]``: left unread, the client closed the
    connection and every turn paid a new one (a TLS handshake with a remote provider)."""
    async with CountingUpstream() as upstream:
        assert [await call(upstream.url) for _ in range(3)] == ["hello"] * 3
        assert upstream.connections == 1


async def test_a_body_held_open_after_done_does_not_hold_the_call() -> None:
    async with CountingUpstream(hold=True) as upstream:
        assert await asyncio.wait_for(call(upstream.url), 10) == "hello"
        assert await asyncio.wait_for(call(upstream.url), 10) == "hello"
        assert upstream.connections == 2  # that connection could not be reused


async def test_the_body_carries_the_messages_and_tools_exactly_as_given(
        upstream: FakeUpstream) -> None:
    """They reach the upstream through ``extra_body`` (the client's own walk of them is
    skipped): nothing added, dropped or renamed, and ``messages`` is not left empty."""
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url",
                                      "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "bash", "arguments": "{\"command\": \"ls\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
    ]
    tools = [{"type": "function", "function": {
        "name": "bash", "description": "run", "parameters": {
            "type": "object", "properties": {"command": {"type": "string"}}}}}]
    upstream.enqueue(Text("ok"))

    async def ignore(text: str) -> None:
        pass

    await call_model(config(upstream), messages, tools, stream=True, on_delta=ignore,
                     timeout=10, retries=0)
    body = upstream.requests[-1]
    assert body["messages"] == messages and body["tools"] == tools
    assert body["model"] == "fake-model" and body["stream"] is True


# --- the HTTP transport ------------------------------------------------------------

async def test_the_client_reads_through_aiohttp() -> None:
    """The openai client's aiohttp transport (``openai.DefaultAioHttpClient``): its C
    HTTP parser reads each streamed chunk for a fraction of the pure-Python stack's
    cost (h11, httpcore, anyio), the hottest path with many paced streams."""
    from openai._vendor.httpx_aiohttp.transport import AiohttpTransport

    from agents.providers import client_for

    client = client_for(ProviderConfig(name="c", provider="openai", model="m",
                                       base_url="http://127.0.0.1:9/v1"),
                        timeout=5, retries=0)
    assert isinstance(client._client._transport, AiohttpTransport)


async def test_a_refused_connection_is_an_upstream_error_that_says_so() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamError) as caught:
        await call(f"http://127.0.0.1:{port}/v1")
    assert "connection failed" in str(caught.value)
