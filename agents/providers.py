"""Model calls through the ``openai`` package, for every provider.

OpenAI, Ollama and Anthropic all serve an OpenAI-compatible chat-completions endpoint, so
one client type reaches them all. Clients are cached per (base_url, api_key): building one
per chat would throw away its connection pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import httpx2  # the HTTP library of openai 3.x (pinned with it)
import openai

DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    "anthropic": "https://api.anthropic.com/v1/",
}


@dataclass(frozen=True)
class ProviderConfig:
    """What the loop needs of a model profile (no ORM object crosses into ``agents``)."""

    name: str
    provider: str
    model: str
    base_url: str = ""
    api_key: str = ""
    context_window: int | None = None
    max_output_tokens: int | None = None

    @property
    def url(self) -> str:
        return self.base_url or DEFAULT_BASE_URLS.get(self.provider, DEFAULT_BASE_URLS["openai"])

    def describe(self) -> str:
        return f"profile {self.name!r} ({self.provider}:{self.model} at {self.url})"


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str  # the raw JSON text the model produced

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; raises ValueError when they are not a JSON object."""
        value = json.loads(self.arguments or "{}")
        if not isinstance(value, dict):
            raise ValueError("tool arguments must be a JSON object")
        return value

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class ModelReply:
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    model: str = ""


class UpstreamError(Exception):
    """The model could not be reached or answered badly; ``partial`` is the text that
    arrived before the failure."""

    def __init__(self, message: str, partial: str = "") -> None:
        super().__init__(message)
        self.partial = partial


# One client per (endpoint, key, options) and event loop: a client's connection pool
# belongs to the loop it was used on (one loop in a server; one per test in the tests).
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, openai.AsyncOpenAI]]" \
    = weakref.WeakKeyDictionary()


def client_for(config: ProviderConfig, *, timeout: float, retries: int) -> openai.AsyncOpenAI:
    """The cached client for this profile's endpoint and key."""
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (config.url, config.api_key, timeout, retries)
    client = per_loop.get(key)
    if client is None:
        if len(per_loop) >= 64:  # keys rotated many times: drop the oldest
            per_loop.pop(next(iter(per_loop)))
        client = per_loop[key] = openai.AsyncOpenAI(
            base_url=config.url,
            # Local servers (Ollama) need no key, but the client insists on one.
            api_key=config.api_key or "not-needed",
            timeout=openai.Timeout(timeout, connect=min(timeout, 10.0)),
            max_retries=retries,
            http_client=openai.DefaultAioHttpClient(),
        )
    return client


def _connect_failure(exc: BaseException) -> BaseException | None:
    """The refused or unreachable connection under ``exc``, if that is what it was.
    The aiohttp transport reports one as a connect timeout (its error map matches
    ``ClientConnectionError`` before ``ClientConnectorError``), so the chain is read."""
    import aiohttp

    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 6:
        if isinstance(cause, aiohttp.ClientConnectorError) and \
                not isinstance(cause, TimeoutError):
            return cause
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return None


def _describe_error(exc: BaseException) -> str:
    refused = _connect_failure(exc)
    if refused is not None:
        return f"connection failed ({type(refused).__name__}: {refused})"
    if isinstance(exc, openai.APIStatusError):
        detail = ""
        body = exc.body
        if isinstance(body, dict):
            err = body.get("error", body)
            detail = err.get("message", "") if isinstance(err, dict) else str(err)
        return f"HTTP {exc.status_code}" + (f": {detail}" if detail else "")
    if isinstance(exc, openai.APITimeoutError):
        return "the request timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"connection failed ({type(cause).__name__}: {cause})"
    return f"{type(exc).__name__}: {exc}"


def request_body(messages: list[dict[str, Any]], tools: list[dict[str, Any]]
                 ) -> dict[str, Any]:
    """The conversation and the tools as arguments of ``completions.create``.

    They go in ``extra_body``, which the client merges into the JSON body as it is (its
    documented way to send fields; a key there wins over the same argument). Passed as
    ``messages=``/``tools=``, the client walks every message and tool against its
    TypedDicts first, on the event loop: 1 ms for a short chat, 32 ms for one of 200
    messages, at every model call. Ours are plain JSON already, so that walk changes
    nothing in them. ``messages`` stays as an empty argument: the client requires it."""
    extra: dict[str, Any] = {"messages": messages}
    if tools:
        extra["tools"] = tools
    return {"messages": [], "extra_body": extra}


# How long streamed text may wait to be joined with more before it is sent (seconds).
DEFAULT_MAX_WAIT = 0.005


async def call_model(config: ProviderConfig, messages: list[dict[str, Any]],
                     tools: list[dict[str, Any]], *, stream: bool,
                     on_delta: Callable[[str], Awaitable[None]],
                     timeout: float, retries: int,
                     max_wait: float = DEFAULT_MAX_WAIT) -> ModelReply:
    """One chat-completions call. Streamed text goes to ``on_delta``: its first piece
    at once, then joined while the previous delta is being sent, no piece held longer
    than ``max_wait`` seconds; tool calls are assembled from their streamed pieces."""
    client = client_for(config, timeout=timeout, retries=retries)
    kwargs: dict[str, Any] = {"model": config.model, **request_body(messages, tools)}
    if config.max_output_tokens:
        kwargs["max_tokens"] = config.max_output_tokens
    reply = ModelReply(model=config.model)
    try:
        if stream:
            await _stream(client, kwargs, reply, on_delta, max_wait)
        else:
            await _complete(client, kwargs, reply)
    except UpstreamError as exc:
        raise UpstreamError(f"{config.describe()}: {exc}", partial=exc.partial) from exc
    except (openai.OpenAIError, ValueError) as exc:  # ValueError: malformed SSE JSON
        raise UpstreamError(f"{config.describe()}: {_describe_error(exc)}",
                            partial=reply.text) from exc
    return reply


async def _complete(client: openai.AsyncOpenAI, kwargs: dict[str, Any],
                    reply: ModelReply) -> None:
    response = await client.chat.completions.create(**kwargs)
    if not response.choices:
        raise ValueError("the reply had no choices")
    choice = response.choices[0]
    reply.text = choice.message.content or ""
    reply.finish_reason = choice.finish_reason
    reply.model = response.model or reply.model
    for call in choice.message.tool_calls or []:
        reply.tool_calls.append(ToolCall(call.id, call.function.name,
                                         call.function.arguments or ""))
    if response.usage:
        reply.input_tokens = response.usage.prompt_tokens or 0
        reply.output_tokens = response.usage.completion_tokens or 0


async def _stream(client: openai.AsyncOpenAI, kwargs: dict[str, Any], reply: ModelReply,
                  on_delta: Callable[[str], Awaitable[None]], max_wait: float) -> None:
    """Stream through the openai client's raw response and parse the SSE here.

    The client still does the HTTP work (auth, base URL, retries and backoff before the
    stream starts, status errors); only its per-chunk pydantic models are skipped: they
    cost about six times what the json parsing does, on the hottest path of the gateway.
    Text goes on through a ``DeltaRelay`` (first piece at once, then coalesced, never
    held longer than ``max_wait``).
    """
    calls: dict[int, ToolCall] = {}
    relay = DeltaRelay(on_delta, max_wait)

    async def read() -> None:
        async with client.chat.completions.with_streaming_response.create(
                stream=True, stream_options={"include_usage": True}, **kwargs) as response:
            chunks = response.iter_bytes().__aiter__()
            pending = b""
            async for data in chunks:
                pending += data
                *events, pending = _SSE_EVENT_END.split(pending)
                for event in events:
                    if _take_event(event, reply, relay.texts, calls):
                        relay.wake()
                        await _drain(chunks)
                        return
                    if relay.texts:
                        await relay.parsed()
                relay.wake()
            if pending.strip():  # a last event without its blank line
                _take_event(pending, reply, relay.texts, calls)

    try:
        await relay.run(read())
    except httpx2.TimeoutException as exc:
        raise UpstreamError("the request timed out", partial=relay.sent_text()) from exc
    except httpx2.HTTPError as exc:
        raise UpstreamError(f"the stream broke off ({type(exc).__name__}: {exc})",
                            partial=relay.sent_text()) from exc
    except BaseException:
        reply.text = relay.sent_text()
        raise
    reply.text = relay.sent_text()
    if reply.finish_reason is None:
        raise UpstreamError("the stream ended without a finish reason (cut off?)",
                            partial=reply.text)
    reply.tool_calls = [calls[i] for i in sorted(calls)]
    for index, call in enumerate(reply.tool_calls):
        if not call.id:
            call.id = f"call_{index}"


# How long the end of a streamed body may take to come after ``[DONE]``.
DRAIN_SECONDS = 1.0


async def _drain(chunks: Any) -> None:
    """Read a stream's body to its end after ``[DONE]``: only a response read to the end
    gives its connection back to the client's pool. Left unread, the connection is
    closed, and the next call pays a new TCP connection (and a TLS handshake, with a
    remote provider). The end normally comes with ``[DONE]``; a server that keeps the
    body open longer loses its connection instead."""
    async def rest() -> None:
        async for _ in chunks:
            pass

    with contextlib.suppress(Exception, asyncio.TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):  # not wait_for: it can swallow a cancel
            await rest()


class DeltaRelay:
    """Passes a model call's streamed text on: the first piece at once, then coalesced.

    Reading and passing on are two tasks: the reader parses chunks into ``texts``; the
    emitter sends what gathered as one delta. So a paced upstream gets one delta per
    chunk, with no added wait, and a fast one (or a busy server) gets fewer, larger
    deltas: the per-event cost is not paid per token when that is what falls behind.

    Two bounds keep it a stream. The first text of the call is sent by the reader itself
    as soon as it is parsed, before the rest of that read is parsed (a fast upstream
    delivers a whole reply in a few reads, and the first delta used to carry most of
    it). After that, no text waits longer than ``max_wait`` while the reader keeps
    parsing: the reader then yields to the emitter.
    """

    def __init__(self, on_delta: Callable[[str], Awaitable[None]], max_wait: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.on_delta = on_delta
        self.max_wait = max_wait
        self.clock = clock
        self.texts: list[str] = []     # parsed, not yet sent (the reader appends)
        self.sent: list[str] = []      # every delta sent, in order
        self.first_sent = False
        self.oldest: float | None = None  # when the oldest text in ``texts`` was parsed
        self._arrived = asyncio.Event()
        self._reading = True

    def sent_text(self) -> str:
        return "".join(self.sent)

    async def parsed(self) -> None:
        """Called by the reader after each event that added text."""
        if not self.first_sent:
            self.first_sent = True
            await self._send()
            return
        now = self.clock()
        if self.oldest is None:
            self.oldest = now
        elif now - self.oldest >= self.max_wait:
            self.wake()
            await asyncio.sleep(0)  # the emitter takes what waited too long

    def wake(self) -> None:
        if self.texts:
            self._arrived.set()

    async def _send(self) -> None:
        joined = "".join(self.texts)
        self.texts.clear()
        self.oldest = None
        self.sent.append(joined)
        await self.on_delta(joined)

    async def run(self, reader: Awaitable[None]) -> None:
        """Run the reader and send what it parses until it ends; the reader's error
        (if any) is raised after the text parsed before it was sent."""
        task = asyncio.ensure_future(self._read(reader))
        try:
            while True:
                await self._arrived.wait()
                self._arrived.clear()
                if self.texts:
                    await self._send()
                if not self._reading and not self.texts:
                    break
            task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _read(self, reader: Awaitable[None]) -> None:
        try:
            await reader
        finally:
            self._reading = False
            self._arrived.set()


_SSE_EVENT_END = re.compile(rb"\r?\n\r?\n")


def _take_event(event: bytes, reply: ModelReply, text: list[str],
                calls: dict[int, ToolCall]) -> bool:
    """Fold one SSE event into the reply (its text into ``text``); True at ``[DONE]``."""
    for raw in event.splitlines():
        if not raw.startswith(b"data:"):
            continue  # comments, "event:" and "id:" lines
        data = raw[5:].strip()
        if data == b"[DONE]":
            return True
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError(f"unexpected stream data {data[:80]!r}")
        if "error" in chunk:
            raise UpstreamError(f"the stream reported an error: {chunk['error']}")
        _take_chunk(chunk, reply, text, calls)
    return False


def _take_chunk(chunk: dict[str, Any], reply: ModelReply, text: list[str],
                calls: dict[int, ToolCall]) -> None:
    """Fold one ``chat.completion.chunk`` into the reply; its text goes to ``text``."""
    usage = chunk.get("usage")
    if usage:
        reply.input_tokens = usage.get("prompt_tokens") or 0
        reply.output_tokens = usage.get("completion_tokens") or 0
    if chunk.get("model"):
        reply.model = chunk["model"]
    choices = chunk.get("choices")
    if not choices:
        return
    choice = choices[0]
    delta = choice.get("delta") or {}
    if delta.get("content"):
        text.append(delta["content"])
    for piece in delta.get("tool_calls") or ():
        index = piece.get("index", 0)
        call = calls.get(index)
        if call is None:
            call = calls[index] = ToolCall(piece.get("id") or "", "", "")
        elif piece.get("id"):
            call.id = piece["id"]
        function = piece.get("function") or {}
        call.name += function.get("name") or ""
        call.arguments += function.get("arguments") or ""
    if choice.get("finish_reason"):
        reply.finish_reason = choice["finish_reason"]
