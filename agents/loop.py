"""The agent loop: model call, tool calls, results, again, until the model stops.

Plain async Python. It knows nothing of HTTP, sockets or the ORM: it is driven by an
``emit(type, data)`` callback for events, a ``decide(calls)`` callback that answers which
tool calls may run (the policy and the user's approval live behind it), and a small
``TurnStore`` that persists the conversation.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from agents import events as ev
from agents.providers import (
    DEFAULT_MAX_WAIT,
    ModelReply,
    ProviderConfig,
    ToolCall,
    UpstreamError,
    call_model,
)
from agents import fs, toolbox
from agents.tools import ToolEnv, ToolResult

Emit = Callable[[str, dict[str, Any]], Awaitable[None]]

# How many rounds in a row in which every call was denied end the turn: a model that keeps
# asking for what it may not do is stopped rather than looping until max rounds.
MAX_DENIED_ROUNDS = 3

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "content_filter": "content_filter"}


@dataclass
class Decision:
    allowed: bool
    reason: str = ""


@dataclass
class ModelCall:
    """What one model call used, for the caller's ledger."""

    model: str
    input_tokens: int
    output_tokens: int
    duration_ms: int


OnModelCall = Callable[[ModelCall], Awaitable[None]]
Decide = Callable[[list[ToolCall]], Awaitable[dict[str, Decision]]]
Prepare = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


class TurnStore(Protocol):
    """What the loop persists. Every method is one write, never one per delta."""

    async def save_assistant(self, text: str, tool_calls: list[dict[str, Any]] | None,
                             usage: dict[str, int], model: str, status: str) -> None: ...

    async def save_tool_result(self, call_id: str, tool_name: str, content: str,
                               is_error: bool) -> None: ...


@dataclass
class TurnSpec:
    provider: ProviderConfig
    messages: list[dict[str, Any]]  # what the model is sent, system prompt first
    tools: list[dict[str, Any]]
    tool_env: ToolEnv
    stream: bool = True
    max_rounds: int = 25
    timeout: float = 120.0
    retries: int = 2
    max_wait: float = DEFAULT_MAX_WAIT  # longest a streamed text waits to be joined (s)
    refresh_env: Callable[[ToolEnv], Awaitable[ToolEnv]] | None = None
    # Told of every model call that answered (usage ledgers, budgets).
    on_model_call: OnModelCall | None = None


@dataclass
class TurnOutcome:
    stop_reason: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    error: str | None = None

    def usage(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}


@dataclass
class _Turn:
    spec: TurnSpec
    emit: Emit
    decide: Decide
    store: TurnStore
    prepare: Prepare | None
    outcome: TurnOutcome = field(init=False)
    unanswered: dict[str, str] = field(default_factory=dict)  # call id -> tool name
    streamed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.outcome = TurnOutcome(stop_reason="end_turn", model=self.spec.provider.model)

    async def on_delta(self, text: str) -> None:
        self.streamed.append(text)
        await self.emit(ev.TEXT_DELTA, {"text": text})

    async def call(self) -> ModelReply:
        spec = self.spec
        messages = await self.prepare(spec.messages) if self.prepare else spec.messages
        spec.messages = messages
        self.streamed = []
        started = time.perf_counter()
        reply = await call_model(spec.provider, messages, spec.tools, stream=spec.stream,
                                 on_delta=self.on_delta, timeout=spec.timeout,
                                 retries=spec.retries, max_wait=spec.max_wait)
        if spec.on_model_call:
            await spec.on_model_call(ModelCall(
                reply.model or spec.provider.model, reply.input_tokens, reply.output_tokens,
                round((time.perf_counter() - started) * 1000)))
        self.outcome.input_tokens += reply.input_tokens
        self.outcome.output_tokens += reply.output_tokens
        self.outcome.model = reply.model or self.outcome.model
        return reply

    async def record_reply(self, reply: ModelReply) -> None:
        calls = [call.to_openai() for call in reply.tool_calls] or None
        usage = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}
        await self.store.save_assistant(reply.text, calls, usage, reply.model, "done")
        self.streamed = []
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = calls
            self.unanswered = {call.id: call.name for call in reply.tool_calls}
        self.spec.messages.append(message)
        if reply.text and not self.spec.stream:
            await self.emit(ev.TEXT, {"text": reply.text})

    async def answer(self, call: ToolCall, result: ToolResult) -> None:
        await self.store.save_tool_result(call.id, call.name, result.content, result.is_error)
        self.unanswered.pop(call.id, None)
        self.spec.messages.append({"role": "tool", "tool_call_id": call.id,
                                   "content": result.content})
        await self.emit(ev.TOOL_RESULT, {"tool_use_id": call.id, "tool_name": call.name,
                                         "content": result.content,
                                         "is_error": result.is_error})
        changed = files_changed(call, result)
        if changed is not None:
            await self.emit(ev.FILES_CHANGED, {"tool_use_id": call.id, **changed})

    async def run_calls(self, calls: list[ToolCall]) -> bool:
        """Run one round of tool calls; True when every call was denied."""
        parsed: dict[str, dict[str, Any]] = {}
        bad: dict[str, str] = {}
        for call in calls:
            try:
                parsed[call.id] = call.parsed_arguments()
            except ValueError as exc:
                bad[call.id] = f"Error: the arguments are not a valid JSON object ({exc})"
        decisions = await self.decide([c for c in calls if c.id in parsed]) if parsed else {}
        denied = 0
        for call in calls:
            if call.id in bad:
                await self.emit(ev.ERROR, {"code": "invalid_tool_call", "message":
                                           f"The model sent arguments for {call.name!r} "
                                           "that are not a JSON object; it was told so and "
                                           "may try again."})
                await self.answer(call, ToolResult(bad[call.id], is_error=True))
                continue
            decision = decisions.get(call.id, Decision(False, "no verdict"))
            if not decision.allowed:
                denied += 1
                await self.answer(call, ToolResult(f"Denied: {decision.reason or 'denied'}",
                                                   is_error=True))
                continue
            await self.emit(ev.TOOL_USE, {"tool_use_id": call.id, "tool_name": call.name,
                                          "arguments": parsed[call.id]})
            if self.spec.refresh_env:
                # Policy-like settings (the sandbox) apply from the very next call on.
                self.spec.tool_env = await self.spec.refresh_env(self.spec.tool_env)
            result = await toolbox.run(call.name, parsed[call.id], self.spec.tool_env)
            if result.failure:
                await self.emit(ev.ERROR, {"code": "tool_failed", "message": result.failure})
            await self.answer(call, result)
        return denied == len(calls)

    async def settle(self, status: str, note: str) -> None:
        """Leave the history consistent after a cancel or failure: keep the partial text,
        marked, and give every tool call that got no result one."""
        if self.streamed:
            text = "".join(self.streamed)
            self.streamed = []
            await self.store.save_assistant(text, None, {}, self.outcome.model, status)
        for call_id, name in list(self.unanswered.items()):
            await self.store.save_tool_result(call_id, name, note, True)
            self.unanswered.pop(call_id, None)


async def run_turn(spec: TurnSpec, emit: Emit, decide: Decide, store: TurnStore, *,
                   prepare: Prepare | None = None) -> TurnOutcome:
    """Run one agent turn to its end and return how it ended.

    Ends with ``agent.turn_complete`` (also after an upstream error, which is emitted as
    ``agent.error`` first). When the task running it is cancelled, the history is settled,
    ``agent.cancelled`` is emitted and CancelledError propagates.
    """
    turn = _Turn(spec, emit, decide, store, prepare)
    outcome = turn.outcome
    denied_rounds = 0
    rounds = 0
    try:
        while True:
            reply = await turn.call()
            await turn.record_reply(reply)
            if not reply.tool_calls:
                outcome.stop_reason = STOP_REASONS.get(reply.finish_reason or "stop",
                                                       reply.finish_reason or "end_turn")
                break
            all_denied = await turn.run_calls(reply.tool_calls)
            denied_rounds = denied_rounds + 1 if all_denied else 0
            rounds += 1
            if denied_rounds >= MAX_DENIED_ROUNDS:
                outcome.stop_reason = "tools_denied"
                break
            if rounds >= spec.max_rounds:
                outcome.stop_reason = "max_tool_rounds"
                break
    except asyncio.CancelledError:
        await asyncio.shield(_cancelled(turn))
        raise
    except UpstreamError as exc:
        if exc.partial and not turn.streamed:
            turn.streamed = [exc.partial]
        await turn.settle("interrupted", "Error: the turn ended before this call ran")
        outcome.stop_reason, outcome.error = "error", str(exc)
        await emit(ev.ERROR, {"code": "upstream_error", "message": str(exc)})
    await emit(ev.TURN_COMPLETE, {"stop_reason": outcome.stop_reason, "model": outcome.model,
                                  "usage": outcome.usage()})
    return outcome


async def _cancelled(turn: _Turn) -> None:
    await turn.settle("cancelled", "Cancelled: the user stopped the turn before this ran")
    await turn.emit(ev.CANCELLED, {"message": "The turn was cancelled."})


def arguments_for_display(call: ToolCall) -> dict[str, Any]:
    """The call's arguments as an object for events (the raw text when not JSON)."""
    try:
        return call.parsed_arguments()
    except ValueError:
        return {"_raw": call.arguments}



# Tools that write the workspace: the path argument they write, None for "anything".
_WRITING_TOOLS = {"write": "path", "edit": "path", "bash": None}


def files_changed(call: ToolCall, result: ToolResult) -> dict[str, Any] | None:
    """The agent.files_changed payload of a finished call, or None if it wrote nothing."""
    if result.is_error or call.name not in _WRITING_TOOLS:
        return None
    key = _WRITING_TOOLS[call.name]
    if key is None:
        return {"paths": [], "complete": False}
    try:
        path = fs.clean(call.parsed_arguments().get(key))
    except (ValueError, fs.FsError):
        return {"paths": [], "complete": False}
    return {"paths": [path], "complete": True}
