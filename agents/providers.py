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
        )
    return client


def _describe_error(exc: BaseException) -> str:
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


async def call_model(config: ProviderConfig, messages: list[dict[str, Any]],
                     tools: list[dict[str, Any]], *, stream: bool,
                     on_delta: Callable[[str], Awaitable[None]],
                     timeout: float, retries: int) -> ModelReply:
    """One chat-completions call. Streamed text goes to ``on_delta`` chunk by chunk;
    tool calls are assembled from their streamed pieces."""
    client = client_for(config, timeout=timeout, retries=retries)
    kwargs: dict[str, Any] = {"model": config.model, "messages": messages}
    if tools:
        kwargs["tools"] = tools
    if config.max_output_tokens:
        kwargs["max_tokens"] = config.max_output_tokens
    reply = ModelReply(model=config.model)
    try:
        if stream:
            await _stream(client, kwargs, reply, on_delta)
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
                  on_delta: Callable[[str], Awaitable[None]]) -> None:
    """Stream through the openai client's raw response and parse the SSE here.

    The client still does the HTTP work (auth, base URL, retries and backoff before the
    stream starts, status errors); only its per-chunk pydantic models are skipped: they
    cost about six times what the json parsing does, on the hottest path of the gateway.

    Reading and passing text on are two tasks: while one delta is being fanned out, the
    chunks that arrive meanwhile are joined into the next one. A paced upstream gets one
    delta per chunk, with no added wait; a fast one (or a busy server) gets fewer, larger
    deltas, so the per-event cost is not paid per token when that is what falls behind.
    """
    parts: list[str] = []
    calls: dict[int, ToolCall] = {}
    texts: list[str] = []
    arrived = asyncio.Event()

    async def read() -> None:
        try:
            async with client.chat.completions.with_streaming_response.create(
                    stream=True, stream_options={"include_usage": True},
                    **kwargs) as response:
                pending = b""
                async for data in response.iter_bytes():
                    pending += data
                    *events, pending = _SSE_EVENT_END.split(pending)
                    done = False
                    for event in events:
                        done = _take_event(event, reply, texts, calls) or done
                    arrived.set()
                    if done:
                        return
                if pending.strip():  # a last event without its blank line
                    _take_event(pending, reply, texts, calls)
        finally:
            arrived.set()

    reader = asyncio.create_task(read())
    try:
        while True:
            await arrived.wait()
            arrived.clear()
            if texts:
                joined = "".join(texts)
                texts.clear()
                parts.append(joined)
                await on_delta(joined)
            if reader.done() and not texts:
                break
        reader.result()  # the reader's error, if it failed
    except httpx2.TimeoutException as exc:
        raise UpstreamError("the request timed out", partial="".join(parts)) from exc
    except httpx2.HTTPError as exc:
        raise UpstreamError(f"the stream broke off ({type(exc).__name__}: {exc})",
                            partial="".join(parts)) from exc
    except BaseException:
        reply.text = "".join(parts)
        raise
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
    reply.text = "".join(parts)
    if reply.finish_reason is None:
        raise UpstreamError("the stream ended without a finish reason (cut off?)",
                            partial=reply.text)
    reply.tool_calls = [calls[i] for i in sorted(calls)]
    for index, call in enumerate(reply.tool_calls):
        if not call.id:
            call.id = f"call_{index}"


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
