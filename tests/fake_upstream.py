"""A fake OpenAI-compatible chat-completions server for tests and benchmarks.

The server speaks real HTTP on ``127.0.0.1`` (free port by default) so that the
real ``openai.AsyncOpenAI`` client -- or a gateway subprocess -- can talk to it.
It runs an aiohttp server in a daemon thread with its own event loop, so it can
be used from sync tests, async tests and other processes alike::

    with FakeUpstream() as fake:
        fake.enqueue(Text("Hello world", chunk_size=3), ToolCalls([("c1", "f", {"a": 1})]))
        client = openai.AsyncOpenAI(base_url=fake.url, api_key="k")
        ...
        assert fake.requests[0]["model"] == "gpt-x"

Scripted replies are consumed FIFO, one per ``POST /v1/chat/completions``;
when the queue is empty :attr:`FakeUpstream.default_reply` is used (echo of the
last user message).  Each reply type is a dataclass in this module:
:class:`Text`, :class:`ToolCalls`, :class:`HttpError`, :class:`Hang`,
:class:`CutStream`, :class:`MalformedSSE`.

Run ``python -m tests.fake_upstream --port 8999`` to serve the echo reply
forever for manual experiments.

This module must not import Django.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from aiohttp import web

__all__ = [
    "FakeUpstream",
    "Reply",
    "Text",
    "ToolCalls",
    "HttpError",
    "Hang",
    "CutStream",
    "MalformedSSE",
    "echo_reply",
    "last_user_text",
]

FAKE_MODEL = "fake-model"
_POLL_INTERVAL = 0.002  # seconds between checks of a threading.Event from the loop
_YIELD_EVERY = 32  # yield to the event loop every N chunks when streaming without delay
_TOOL_ARG_PIECE = 12  # characters of tool-call arguments per streamed chunk


# --------------------------------------------------------------------------- #
# Reply types
# --------------------------------------------------------------------------- #


@dataclass
class Text:
    """A normal assistant text answer.

    Streamed (request ``"stream": true``) as one chunk per piece, after an
    initial role-only chunk (``{"role": "assistant", "content": ""}``, like
    OpenAI).  Pieces are ``chunks`` if given, else slices of ``chunk_size``
    characters, else one piece per whitespace-separated word with its
    following whitespace attached (so ``"".join(pieces) == content``).

    Attributes:
        content: the full answer text (ignored for splitting when ``chunks`` is given;
            the non-streamed answer is ``"".join(chunks)`` in that case).
        chunk_size: split into slices of this many characters.
        chunks: explicit pieces.
        delay: seconds to sleep between content chunks (non-streamed: the
            response is delayed by ``delay * number_of_pieces``).
        usage: ``(prompt_tokens, completion_tokens)``; computed when None.
        finish_reason: finish reason of the final chunk / choice.
        pause_after: after this many content pieces have been sent, wait until
            ``release`` is set (non-streamed: wait before answering at all).
        release: event that ends the pause; created automatically when
            ``pause_after`` is set and no event is given.
        paused: set by the server when the pause point is reached (an
            addition for tests: ``reply.paused.wait(5)`` then inspect state,
            then ``reply.release.set()``).
    """

    content: str
    chunk_size: Optional[int] = None
    chunks: Optional[list[str]] = None
    delay: float = 0.0
    usage: Optional[tuple[int, int]] = None
    finish_reason: str = "stop"
    pause_after: Optional[int] = None
    release: Optional[threading.Event] = None
    paused: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if self.pause_after is not None and self.release is None:
            self.release = threading.Event()

    def pieces(self) -> list[str]:
        """Return the content pieces this reply is streamed as."""
        if self.chunks is not None:
            return list(self.chunks)
        if self.chunk_size is not None:
            n = self.chunk_size
            return [self.content[i : i + n] for i in range(0, len(self.content), n)]
        return split_words(self.content)

    @property
    def full_content(self) -> str:
        """The complete text (``"".join(chunks)`` when explicit chunks are given)."""
        return "".join(self.chunks) if self.chunks is not None else self.content


@dataclass
class ToolCalls:
    """The model asks for tool calls; finish_reason ``"tool_calls"``.

    Attributes:
        calls: ``(id, name, arguments)`` triples; a dict is JSON-encoded, a
            str is sent verbatim (so tests can send invalid JSON).
        content: optional text streamed as content deltas before the calls.
        usage: ``(prompt_tokens, completion_tokens)``; computed when None.
    """

    calls: list[tuple[str, str, Union[dict, str]]]
    content: str = ""
    usage: Optional[tuple[int, int]] = None

    def encoded_calls(self) -> list[tuple[str, str, str]]:
        """Return the calls with arguments encoded as strings."""
        out = []
        for call_id, name, args in self.calls:
            out.append((call_id, name, args if isinstance(args, str) else json.dumps(args)))
        return out


@dataclass
class HttpError:
    """An HTTP error response (e.g. 500, or 429 with ``{"Retry-After": "1"}``).

    ``body`` defaults to the OpenAI error shape
    ``{"error": {"message", "type", "param", "code"}}``; a str body is sent
    verbatim (still labelled ``application/json`` unless ``headers`` set a
    Content-Type).
    """

    status: int
    body: Optional[Union[dict, str]] = None
    headers: Optional[dict] = None


@dataclass
class Hang:
    """Wait ``seconds`` before sending anything (slow first byte), then answer ``Text("late")``."""

    seconds: float


@dataclass
class CutStream:
    """Stream ``after_chunks`` content chunks of ``content`` (word split), then drop the connection.

    No finish chunk and no ``[DONE]``; the chunked body is never terminated.
    For a non-streamed request, half of the JSON body is sent (with the full
    Content-Length) before the connection is dropped.
    """

    content: str
    after_chunks: int


@dataclass
class MalformedSSE:
    """A 200 ``text/event-stream`` carrying one ``data:`` line that is not JSON, then the end.

    Sent as an event stream whatever the request's ``stream`` flag.
    """

    data: str = "this is {not json"


Reply = Union[Text, ToolCalls, HttpError, Hang, CutStream, MalformedSSE]


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #

_WORD_RE = re.compile(r"\s*\S+\s*|\s+")


def split_words(content: str) -> list[str]:
    """Split into words keeping whitespace, so that ``"".join(result) == content``.

    Leading whitespace is attached to the first word, trailing whitespace to
    the word before it.
    """
    return _WORD_RE.findall(content)


def _content_text(content: Any) -> str:
    """Text of a message ``content`` (a string, or a list of content blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and block.get("type", "text") == "text":
                text = block.get("text")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(block, str):
                parts.append(block)
        return "".join(parts)
    return str(content)


def last_user_text(body: dict) -> str:
    """Text of the last ``role == "user"`` message of a chat-completions body ("" if none)."""
    messages = body.get("messages") or []
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            return _content_text(msg.get("content"))
    return ""


def echo_reply(body: dict) -> Reply:
    """The default reply: ``Text("echo: " + text of the last user message)``."""
    return Text("echo: " + last_user_text(body))


def _prompt_tokens(body: dict) -> int:
    """Plausible prompt token count: total characters of the messages / 4, at least 1."""
    total = 0
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            continue
        total += len(_content_text(msg.get("content")))
        for tc in msg.get("tool_calls") or []:
            if isinstance(tc, dict):
                fn = tc.get("function") or {}
                total += len(str(fn.get("name", ""))) + len(str(fn.get("arguments", "")))
    return max(1, total // 4)


def _usage_dict(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _split_args(args: str) -> list[str]:
    """Split tool-call arguments into at least 2 pieces."""
    if len(args) < 2:
        return [args, ""]
    n = max(2, -(-len(args) // _TOOL_ARG_PIECE))
    size = -(-len(args) // n)
    return [args[i : i + size] for i in range(0, len(args), size)]


_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    409: ("conflict_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def _error_body(status: int, message: Optional[str] = None) -> dict:
    etype, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {
        "error": {
            "message": message or f"Fake upstream error (HTTP {status})",
            "type": etype,
            "param": None,
            "code": code,
        }
    }


async def _wait_event(event: threading.Event) -> None:
    """Wait for a threading.Event without blocking the event loop (cancellable)."""
    while not event.is_set():
        await asyncio.sleep(_POLL_INTERVAL)


class _ChunkEncoder:
    """Encodes ``chat.completion.chunk`` SSE events with a precomputed prefix."""

    __slots__ = ("_prefix", "_suffix_null", "_usage_null")

    def __init__(self, cid: str, created: int, model: str, include_usage: bool) -> None:
        head = json.dumps(
            {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model},
            separators=(",", ":"),
        )
        self._prefix = b"data: " + head[:-1].encode() + b',"choices":[{"index":0,"delta":'
        self._usage_null = b',"usage":null' if include_usage else b""
        self._suffix_null = b',"finish_reason":null}]' + self._usage_null + b"}\n\n"

    def delta(self, delta: dict, finish_reason: Optional[str] = None) -> bytes:
        """One SSE event for ``delta`` (``finish_reason`` null unless given)."""
        d = json.dumps(delta, separators=(",", ":")).encode()
        if finish_reason is None:
            return self._prefix + d + self._suffix_null
        fr = json.dumps(finish_reason).encode()
        return self._prefix + d + b',"finish_reason":' + fr + b"}]" + self._usage_null + b"}\n\n"

    def usage(self, usage: dict) -> bytes:
        """The final usage-only event (``"choices": []``)."""
        # The prefix ends with '"choices":[{"index":0,"delta":'; rebuild without it.
        head = self._prefix[: self._prefix.index(b'"choices":')]
        return head + b'"choices":[],"usage":' + json.dumps(usage, separators=(",", ":")).encode() + b"}\n\n"


_DONE = b"data: [DONE]\n\n"


# --------------------------------------------------------------------------- #
# Server
# --------------------------------------------------------------------------- #


class FakeUpstream:
    """Fake OpenAI chat-completions server on a background thread.

    Attributes:
        default_reply: callable ``(request_body) -> Reply`` used when the
            reply queue is empty (default :func:`echo_reply`).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host: str = host
        self._requested_port: int = port
        self._port: Optional[int] = None
        self.default_reply: Callable[[dict], Reply] = echo_reply
        self._lock = threading.Lock()
        self._queue: collections.deque[Reply] = collections.deque()
        self._requests: list[dict] = []
        self._auth: list[Optional[str]] = []
        self._ids = itertools.count(1)
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._tasks: set[asyncio.Task] = set()
        self._ready = threading.Event()
        self._start_error: Optional[BaseException] = None

    # ----------------------------------------------------------- lifecycle

    def start(self) -> "FakeUpstream":
        """Start the server thread and wait until it is listening. Returns self."""
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        self._ready.clear()
        self._start_error = None
        self._thread = threading.Thread(target=self._thread_main, name="FakeUpstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("FakeUpstream did not start within 10 s")
        if self._start_error is not None:
            self._thread.join(5)
            self._thread = None
            raise self._start_error
        return self

    def stop(self) -> None:
        """Stop the server: cancel in-flight responses, close the socket, join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        try:
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            fut.result(10)
        except Exception:  # pragma: no cover - best effort
            pass
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            self._thread = None
            self._loop = None
            self._port = None

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._setup())
        except BaseException as exc:  # noqa: BLE001 - reported to start()
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _setup(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port, backlog=1024)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----------------------------------------------------------- public state

    @property
    def port(self) -> int:
        """The bound TCP port (only valid while started)."""
        if self._port is None:
            raise RuntimeError("FakeUpstream is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL for the openai client, e.g. ``http://127.0.0.1:12345/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def requests(self) -> list[dict]:
        """Copy of the JSON bodies received on ``/v1/chat/completions``, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def auth_headers(self) -> list[Optional[str]]:
        """``Authorization`` header of each chat-completions request (None if absent), in order."""
        with self._lock:
            return list(self._auth)

    def enqueue(self, *replies: Reply) -> None:
        """Queue scripted replies; consumed FIFO, one per chat-completions request."""
        with self._lock:
            self._queue.extend(replies)

    def clear(self) -> None:
        """Drop queued replies and recorded requests/auth headers."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._auth.clear()

    @property
    def pending(self) -> int:
        """Number of scripted replies not yet consumed."""
        with self._lock:
            return len(self._queue)

    # ----------------------------------------------------------- handlers

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            path = request.path.rstrip("/")
            if path == "/v1/chat/completions":
                if request.method != "POST":
                    return web.json_response(_error_body(405, "Method not allowed"), status=405)
                return await self._chat(request)
            if path == "/v1/models" and request.method == "GET":
                return web.json_response(
                    {
                        "object": "list",
                        "data": [{"id": FAKE_MODEL, "object": "model", "created": 0, "owned_by": "fake-upstream"}],
                    }
                )
            if path == f"/v1/models/{FAKE_MODEL}" and request.method == "GET":
                return web.json_response(
                    {"id": FAKE_MODEL, "object": "model", "created": 0, "owned_by": "fake-upstream"}
                )
            return web.json_response(_error_body(404, f"Unknown path: {request.method} {request.path}"), status=404)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json(loads=json.loads)
        except ValueError:
            return web.json_response(_error_body(400, "Request body is not valid JSON"), status=400)
        if not isinstance(body, dict):
            return web.json_response(_error_body(400, "Request body must be a JSON object"), status=400)
        with self._lock:
            self._requests.append(body)
            self._auth.append(request.headers.get("Authorization"))
            reply = self._queue.popleft() if self._queue else None
        if reply is None:
            reply = self.default_reply(body)

        stream = bool(body.get("stream"))
        model = body.get("model") or FAKE_MODEL
        cid = f"chatcmpl-fake{next(self._ids):06d}"
        created = int(time.time())

        if isinstance(reply, Hang):
            await asyncio.sleep(reply.seconds)
            reply = Text("late")

        if isinstance(reply, HttpError):
            return self._http_error(reply)
        if isinstance(reply, MalformedSSE):
            resp = self._sse_response()
            await resp.prepare(request)
            await resp.write_eof(b"data: " + reply.data.encode() + b"\n\n")
            return resp
        if isinstance(reply, CutStream):
            return await self._cut(request, reply, body, stream, cid, created, model)
        if isinstance(reply, Text):
            if stream:
                return await self._stream_text(request, reply, body, cid, created, model)
            return await self._complete_text(reply, body, cid, created, model)
        if isinstance(reply, ToolCalls):
            if stream:
                return await self._stream_tools(request, reply, body, cid, created, model)
            return self._complete_tools(reply, body, cid, created, model)
        raise TypeError(f"Unknown reply type: {reply!r}")

    @staticmethod
    def _http_error(reply: HttpError) -> web.Response:
        body = reply.body if reply.body is not None else _error_body(reply.status)
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = dict(reply.headers or {})
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return web.Response(body=raw, status=reply.status, headers=headers)

    @staticmethod
    def _sse_response() -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.content_type = "text/event-stream"
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    @staticmethod
    def _completion(cid: str, created: int, model: str, message: dict, finish: str, usage: dict) -> dict:
        return {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }

    @staticmethod
    def _usage(reply_usage: Optional[tuple[int, int]], body: dict, completion: int) -> dict:
        if reply_usage is not None:
            return _usage_dict(int(reply_usage[0]), int(reply_usage[1]))
        return _usage_dict(_prompt_tokens(body), max(1, completion))

    async def _complete_text(self, reply: Text, body: dict, cid: str, created: int, model: str) -> web.Response:
        pieces = reply.pieces()
        if reply.pause_after is not None and reply.release is not None:
            reply.paused.set()
            await _wait_event(reply.release)
        if reply.delay > 0 and pieces:
            await asyncio.sleep(reply.delay * len(pieces))
        message = {"role": "assistant", "content": reply.full_content}
        usage = self._usage(reply.usage, body, len(pieces))
        return web.json_response(self._completion(cid, created, model, message, reply.finish_reason, usage))

    def _complete_tools(self, reply: ToolCalls, body: dict, cid: str, created: int, model: str) -> web.Response:
        calls = reply.encoded_calls()
        message = {
            "role": "assistant",
            "content": reply.content or None,
            "tool_calls": [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls
            ],
        }
        n_chunks = len(split_words(reply.content)) + sum(1 + len(_split_args(a)) for _, _, a in calls)
        usage = self._usage(reply.usage, body, n_chunks)
        return web.json_response(self._completion(cid, created, model, message, "tool_calls", usage))

    @staticmethod
    def _include_usage(body: dict) -> bool:
        opts = body.get("stream_options")
        return isinstance(opts, dict) and bool(opts.get("include_usage"))

    async def _stream_text(
        self, request: web.Request, reply: Text, body: dict, cid: str, created: int, model: str
    ) -> web.StreamResponse:
        include_usage = self._include_usage(body)
        enc = _ChunkEncoder(cid, created, model, include_usage)
        pieces = reply.pieces()
        resp = self._sse_response()
        await resp.prepare(request)
        await resp.write(enc.delta({"role": "assistant", "content": ""}))
        delay = reply.delay
        pause_at = reply.pause_after
        for i, piece in enumerate(pieces):
            if pause_at is not None and i == pause_at and reply.release is not None:
                reply.paused.set()
                await _wait_event(reply.release)
            elif delay > 0 and i > 0:
                await asyncio.sleep(delay)
            elif i and i % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            await resp.write(enc.delta({"content": piece}))
        if pause_at is not None and pause_at >= len(pieces) and reply.release is not None:
            reply.paused.set()
            await _wait_event(reply.release)
        tail = enc.delta({}, reply.finish_reason)
        if include_usage:
            tail += enc.usage(self._usage(reply.usage, body, len(pieces)))
        await resp.write_eof(tail + _DONE)
        return resp

    async def _stream_tools(
        self, request: web.Request, reply: ToolCalls, body: dict, cid: str, created: int, model: str
    ) -> web.StreamResponse:
        include_usage = self._include_usage(body)
        enc = _ChunkEncoder(cid, created, model, include_usage)
        resp = self._sse_response()
        await resp.prepare(request)
        out: list[bytes] = [enc.delta({"role": "assistant", "content": ""})]
        for piece in split_words(reply.content):
            out.append(enc.delta({"content": piece}))
        n_chunks = len(out) - 1
        for index, (call_id, name, args) in enumerate(reply.encoded_calls()):
            out.append(
                enc.delta(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            for part in _split_args(args):
                out.append(enc.delta({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
            n_chunks += 1 + len(_split_args(args))
        for data in out:
            await resp.write(data)
        tail = enc.delta({}, "tool_calls")
        if include_usage:
            tail += enc.usage(self._usage(reply.usage, body, n_chunks))
        await resp.write_eof(tail + _DONE)
        return resp

    async def _cut(
        self,
        request: web.Request,
        reply: CutStream,
        body: dict,
        stream: bool,
        cid: str,
        created: int,
        model: str,
    ) -> web.StreamResponse:
        if stream:
            enc = _ChunkEncoder(cid, created, model, self._include_usage(body))
            resp = self._sse_response()
            await resp.prepare(request)
            await resp.write(enc.delta({"role": "assistant", "content": ""}))
            for piece in split_words(reply.content)[: reply.after_chunks]:
                await resp.write(enc.delta({"content": piece}))
        else:
            full = json.dumps(
                self._completion(
                    cid,
                    created,
                    model,
                    {"role": "assistant", "content": reply.content},
                    "stop",
                    _usage_dict(_prompt_tokens(body), 1),
                )
            ).encode()
            resp = web.StreamResponse(status=200)
            resp.content_type = "application/json"
            resp.content_length = len(full)
            await resp.prepare(request)
            await resp.write(full[: len(full) // 2])
        transport = request.transport
        if transport is not None:
            # Let the kernel take what was written so far, then drop the connection
            # without terminating the body.
            deadline = time.monotonic() + 2.0
            while transport.get_write_buffer_size() and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            transport.abort()
        # aiohttp's write_eof() on the dead transport raises a ConnectionError,
        # which it treats as "client went away" (no error logged).
        return resp


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #


def main(argv: Optional[list[str]] = None) -> None:
    """Serve the default echo reply forever (``python -m tests.fake_upstream --port 8999``)."""
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible chat-completions server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    args = parser.parse_args(argv)
    fake = FakeUpstream(args.host, args.port).start()
    print(fake.url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
