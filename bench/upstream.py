"""A fast fake OpenAI-compatible upstream for the benchmark (its own process, loopback).

``python bench/upstream.py [--port 0]`` prints ``listening <port>`` and serves
``POST /v1/chat/completions`` until killed. It is a bare asyncio protocol (no web
framework) so that it costs as little as possible next to what it measures.

What a request asks for is written in its last user message, so that any number of chats
can run at once without a shared script::

    bench tokens=200 delay_ms=10 tool=bash

* ``tokens``: content chunks of the answer (one token each: ``" t0"``, ``" t1"``, ...;
  :func:`expected_text` gives the whole answer);
* ``delay_ms``: pause between chunks (0: the whole answer is written at once);
* ``tool=bash``: when the last message is that user message, the answer is one
  ``bash`` tool call ``{"command": "echo hi"}`` (streamed in pieces, as OpenAI does);
  once the tool result is the last message, the text answer follows.

Streamed answers are chunks shaped like OpenAI's, with ``usage`` at the end when
``stream_options.include_usage`` is set; ``stream: false`` gets one completion.
``GET /bench/last_request`` returns the last chat-completions body received (the
benchmark sends the very same request straight here for its baselines);
``GET /bench/stats`` the request count.

This module must not import Django.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from typing import Any

MODEL = "bench-model"
TOOL_ARGS = json.dumps({"command": "echo hi"})
_SPEC = re.compile(r"(\w+)=(\S+)")
_CREATED = int(time.time())


def token(i: int) -> str:
    return f" t{i}"


def expected_text(tokens: int) -> str:
    """The whole answer of ``tokens=N``."""
    return "".join(token(i) for i in range(tokens))


def spec_message(tokens: int, delay_ms: float = 0, tool: str = "", note: str = "") -> str:
    """The user message that asks this upstream for an answer of that shape."""
    parts = ["bench", f"tokens={tokens}"]
    if delay_ms:
        parts.append(f"delay_ms={delay_ms:g}")
    if tool:
        parts.append(f"tool={tool}")
    if note:
        parts.append(f"note={note}")
    return " ".join(parts)


def parse_spec(text: str) -> dict[str, Any]:
    found = dict(_SPEC.findall(text or ""))
    return {"tokens": max(0, int(found.get("tokens", 20))),
            "delay": max(0.0, float(found.get("delay_ms", 0))) / 1000.0,
            "tool": found.get("tool", "")}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content
                       if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


def plan(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """("tool" | "text", spec) for a chat-completions body."""
    messages = body.get("messages") or []
    last_user = next((m for m in reversed(messages)
                      if isinstance(m, dict) and m.get("role") == "user"), {})
    spec = parse_spec(_text_of(last_user.get("content")))
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if spec["tool"] == "bash" and last.get("role") == "user":
        return "tool", spec
    return "text", spec


# --------------------------------------------------------------------------- encoding

class Encoder:
    """``chat.completion.chunk`` events with the fixed parts precomputed."""

    def __init__(self, cid: str, model: str, include_usage: bool) -> None:
        head = json.dumps({"id": cid, "object": "chat.completion.chunk", "created": _CREATED,
                           "model": model, "system_fingerprint": "fp_bench"},
                          separators=(",", ":"))
        self.prefix = b"data: " + head[:-1].encode() + b',"choices":[{"index":0,"delta":'
        self.usage_null = b',"usage":null' if include_usage else b""
        self.suffix = b',"logprobs":null,"finish_reason":null}]' + self.usage_null + b"}\n\n"
        self.cid, self.model = cid, model

    def delta(self, delta: dict[str, Any]) -> bytes:
        return self.prefix + json.dumps(delta, separators=(",", ":")).encode() + self.suffix

    def content(self, text: str) -> bytes:
        return self.prefix + b'{"content":' + json.dumps(text).encode() + b"}" + self.suffix

    def finish(self, reason: str) -> bytes:
        return (self.prefix + b'{},"logprobs":null,"finish_reason":"' + reason.encode()
                + b'"}]' + self.usage_null + b"}\n\n")

    def usage(self, prompt: int, completion: int) -> bytes:
        body = {"id": self.cid, "object": "chat.completion.chunk", "created": _CREATED,
                "model": self.model, "system_fingerprint": "fp_bench", "choices": [],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion}}
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def prompt_tokens(raw_body: bytes) -> int:
    return max(1, len(raw_body) // 4)


def tool_events(enc: Encoder) -> list[bytes]:
    out = [enc.delta({"role": "assistant", "content": None}),
           enc.delta({"tool_calls": [{"index": 0, "id": "call_bench", "type": "function",
                                      "function": {"name": "bash", "arguments": ""}}]})]
    for i in range(0, len(TOOL_ARGS), 8):
        out.append(enc.delta({"tool_calls": [{"index": 0,
                                              "function": {"arguments": TOOL_ARGS[i:i + 8]}}]}))
    out.append(enc.finish("tool_calls"))
    return out


# --------------------------------------------------------------------------- the server

class Stats:
    requests = 0
    last_request: bytes = b"{}"


_ids = iter(range(1, 1 << 62))


class Http(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, one request at a time per connection."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.busy = False
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.handles: list[asyncio.TimerHandle] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for handle in self.handles:
            handle.cancel()
        self.handles.clear()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.next_request()

    def next_request(self) -> None:
        if self.busy or self.closed:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        try:
            method, path, _ = head[0].split(" ", 2)
        except ValueError:
            return self.fail(400, "bad request line")
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            return self.fail(411, "send a Content-Length")
        length = int(headers.get("content-length") or 0)
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        self.busy = True
        self.route(method, path.split("?", 1)[0], body)

    def done(self) -> None:
        self.busy = False
        if self.buf:
            self.next_request()

    # -- responses ---------------------------------------------------------------------
    def send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 411: "Length Required"}
        assert self.transport is not None
        self.transport.write(
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.done()

    def fail(self, status: int, message: str) -> None:
        self.send(status, json.dumps({"error": {"message": message, "type": "bench",
                                                "param": None, "code": None}}).encode())

    def route(self, method: str, path: str, body: bytes) -> None:
        if method == "POST" and path.rstrip("/") == "/v1/chat/completions":
            try:
                request = json.loads(body)
            except ValueError:
                return self.fail(400, "body is not JSON")
            Stats.requests += 1
            Stats.last_request = body
            return self.chat(request, body)
        if method == "GET" and path == "/bench/last_request":
            return self.send(200, Stats.last_request)
        if method == "GET" and path == "/bench/stats":
            return self.send(200, json.dumps({"requests": Stats.requests}).encode())
        return self.fail(404, f"unknown path {method} {path}")

    def chat(self, request: dict[str, Any], raw: bytes) -> None:
        kind, spec = plan(request)
        model = request.get("model") or MODEL
        cid = f"chatcmpl-bench{next(_ids)}"
        opts = request.get("stream_options")
        include_usage = isinstance(opts, dict) and bool(opts.get("include_usage"))
        n = spec["tokens"]
        if not request.get("stream"):
            return self.complete(kind, n, cid, model, raw)
        enc = Encoder(cid, model, include_usage)
        if kind == "tool":
            head, contents, tail = [], tool_events(enc), []
            completion = len(contents) - 2
        else:
            head = [enc.delta({"role": "assistant", "content": ""})]
            contents = [enc.content(token(i)) for i in range(n)]
            tail = [enc.finish("stop")]
            completion = n
        if include_usage:
            tail.append(enc.usage(prompt_tokens(raw), completion))
        tail.append(b"data: [DONE]\n\n")
        if kind == "tool" or not spec["delay"] or n < 2:
            payload = b"".join(head + contents + tail)
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\nContent-Length: "
                + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            return self.done()
        groups = list(contents)
        groups[0] = b"".join(head) + groups[0]
        groups[-1] = groups[-1] + b"".join(tail)
        self.paced(groups, spec["delay"])

    def paced(self, groups: list[bytes], delay: float) -> None:
        """Chunked transfer; group i (content chunk i) goes out at start + i * delay, on
        the loop's clock, so the pauses do not drift."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
        start = loop.time()
        state = {"i": 0}

        def write_next() -> None:
            if self.closed:
                return
            i = state["i"]
            data = groups[i]
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))  # type: ignore[union-attr]
            state["i"] = i + 1
            if i + 1 < len(groups):
                self.handles = [loop.call_at(start + (i + 1) * delay, write_next)]
            else:
                self.transport.write(b"0\r\n\r\n")  # type: ignore[union-attr]
                self.handles = []
                self.done()

        write_next()

    def complete(self, kind: str, n: int, cid: str, model: str, raw: bytes) -> None:
        if kind == "tool":
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_bench", "type": "function",
                 "function": {"name": "bash", "arguments": TOOL_ARGS}}]}
            finish, completion = "tool_calls", 1
        else:
            message = {"role": "assistant", "content": expected_text(n)}
            finish, completion = "stop", n
        prompt = prompt_tokens(raw)
        self.send(200, json.dumps({
            "id": cid, "object": "chat.completion", "created": _CREATED, "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion}}).encode())


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, host, port, backlog=2048, reuse_address=True)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
