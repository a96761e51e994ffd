"""Context accounting and compaction planning: plain Python, no Django.

Counting what a model call costs
--------------------------------
A request is the system prompt, the conversation and the tool schemas. The count of what
*will* be sent follows one rule (:func:`estimate_tokens`):

1. The upstream's reported ``usage.input_tokens`` is the truth for what was sent. The
   last model call whose reply is in the conversation (an *anchor*: the assistant message
   carries the usage of the request that produced it) gives the exact cost of everything
   before that reply.
2. What was added since (that reply itself and every later message) is counted offline
   with a real tokenizer (:mod:`agents.tokens`: exact for OpenAI models, cl100k plus a
   10% margin for the rest, ``utf8 bytes / 3`` if no tokenizer loads).
3. Without a usable anchor (no call yet, the usage predates the latest compaction, or
   another model answered it) the whole request is counted offline: every message with
   its framing, plus the tool schemas.

The caller decides whether an anchor is usable; this module only does the arithmetic.

Compaction
----------
An *exchange* is a user message and everything after it up to the next user message
(the assistant's replies, its tool calls and their results). Compaction summarises every
exchange but the last ``keep`` ones and sends the summary in their place; since cuts fall
on user messages, an assistant tool call is never separated from its results.

The summary is sent as a ``system`` message right after the system prompt (see
:func:`summary_message`): it is context the gateway supplies, not something the user
said, so a ``user`` message would invite the model to answer it and would put two user
messages in a row (which strict chat templates reject). Leading system messages are what
every OpenAI-compatible server accepts (Anthropic's endpoint and Ollama's templates join
them into the system prompt).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agents import tokens

#: Share of the context window one tool result may take in what is sent; a larger one
#: is cut (head kept) with a note saying so.
TOOL_RESULT_WINDOW_SHARE = 0.25
TOOL_RESULT_NOTE = ("\n[... tool output truncated by the gateway: {cut} of {total} tokens "
                    "cut so that it fits the context window]")

#: The summary's budget: a tenth of the window, at most this many tokens, and never more
#: than half of what it replaces (so compaction always frees room).
SUMMARY_MAX_TOKENS = 2048
SUMMARY_MIN_TOKENS = 32
#: Share of the window the transcript given to the summariser may take.
TRANSCRIPT_WINDOW_SHARE = 0.6
SUMMARY_PREFIX = "Summary of the earlier conversation (older messages were compacted into it):"

SUMMARY_PROMPT = (
    "You compact the history of a conversation between a user and an AI agent that uses "
    "tools (shell commands, reading and editing files) in the user's workspace. Write a "
    "summary that lets the agent carry on without the original messages: what the user "
    "wants, the decisions made, the facts and results that matter (file names, commands, "
    "values, errors and how they were solved), and what is still to do. Write compact "
    "notes in the third person, keep exact names and numbers, invent nothing, and do not "
    "address the user. Stay under {words} words."
)


# --- counting ----------------------------------------------------------------------

@dataclass(frozen=True)
class Anchor:
    """The usage of the last model call: ``input_tokens`` of the request, and how many
    of the messages at the end of the list came after that request (``tail``: its reply
    and everything since; at least 1)."""

    input_tokens: int
    tail: int


def estimate_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                    model: str, anchor: Anchor | None = None) -> int:
    """Tokens the request made of ``messages`` and ``tools`` costs (module docstring)."""
    if anchor and anchor.input_tokens > 0 and 0 < anchor.tail < len(messages):
        return anchor.input_tokens + sum(tokens.count_message(m, model)
                                         for m in messages[-anchor.tail:])
    return tokens.count_messages(messages, model) + tokens.count_tools(tools, model)


def upper_bound_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int:
    """A bound on ``estimate_tokens`` without a tokenizer: a token is at least one UTF-8
    byte of the JSON sent (the approximation for unknown models adds its margin), so a
    context whose JSON is small enough cannot need compaction, and the check before each
    model call then costs no tokenizer (nor its ~100 MB, loaded on first use)."""
    size = len(json.dumps([messages, tools], ensure_ascii=False).encode("utf-8",
                                                                        "surrogatepass"))
    images = sum(1 for m in messages if isinstance(m.get("content"), list)
                 for block in m["content"] if isinstance(block, dict)
                 and block.get("type") != "text")
    return int(size * (1 + tokens.APPROXIMATION_MARGIN_PERCENT / 100)) + 1 \
        + images * tokens.IMAGE_TOKENS


def should_compact(used: int, window: int, threshold: float, exchanges: int,
                   keep: int) -> bool:
    """True when the context has passed ``threshold`` of the window and there are older
    exchanges than the ``keep`` last to summarise."""
    return used > threshold * window and exchanges > keep


def cap_tool_results(messages: list[dict[str, Any]], model: str,
                     window: int) -> list[dict[str, Any]]:
    """The messages with every tool result longer than a quarter of the window cut to
    that share, with a note; the others are the same objects."""
    cap = max(1, int(window * TOOL_RESULT_WINDOW_SHARE))
    out = []
    for message in messages:
        content = message.get("content")
        if message.get("role") == "tool" and isinstance(content, str) and content:
            cut = tokens.truncate_to_tokens(content, model, cap, TOOL_RESULT_NOTE)
            if cut is not content:
                message = {**message, "content": cut}
        out.append(message)
    return out


# --- planning ----------------------------------------------------------------------

def exchange_starts(messages: list[dict[str, Any]]) -> list[int]:
    """Indexes of the user messages: where each exchange begins."""
    return [i for i, m in enumerate(messages) if m.get("role") == "user"]


@dataclass(frozen=True)
class Plan:
    """Summarise ``messages[:cut]`` (``removed`` exchanges), keep the rest verbatim."""

    cut: int
    removed: int
    kept: int


def plan_compaction(messages: list[dict[str, Any]], keep: int) -> Plan | None:
    """What to summarise so that the last ``keep`` exchanges stay verbatim; None when
    there is no older exchange. ``messages`` is the conversation without the system
    prompt or summary. Messages before the first user message (none in a normal chat)
    go with the oldest exchange."""
    starts = exchange_starts(messages)
    keep = max(1, keep)
    if len(starts) <= keep:
        return None
    return Plan(cut=starts[-keep], removed=len(starts) - keep, kept=keep)


def summary_budget(window: int, replaced_tokens: int) -> int:
    """How many tokens the summary may take (see :data:`SUMMARY_MAX_TOKENS`)."""
    return max(SUMMARY_MIN_TOKENS, min(SUMMARY_MAX_TOKENS, window // 10, replaced_tokens // 2))


def summary_message(summary: str) -> dict[str, Any]:
    """The message that stands for the compacted exchanges in what is sent."""
    return {"role": "system", "content": f"{SUMMARY_PREFIX}\n{summary}"}


def is_summary_message(message: dict[str, Any]) -> bool:
    content = message.get("content")
    return (message.get("role") == "system" and isinstance(content, str)
            and content.startswith(SUMMARY_PREFIX))


# --- the summariser's request ------------------------------------------------------

def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
            elif isinstance(block, dict) and block.get("type") in ("image_url", "image",
                                                                   "input_image"):
                parts.append("[image]")
            elif isinstance(block, str):
                parts.append(block)
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False, default=str)


def _render(message: dict[str, Any], tool_names: dict[str, str]) -> str:
    role = message.get("role")
    text = _text_of(message.get("content"))
    if role == "user":
        return f"User: {text}"
    if role == "tool":
        name = tool_names.get(message.get("tool_call_id") or "", "tool")
        return f"Result of {name}: {text}"
    if role == "assistant":
        lines = [f"Assistant: {text}"] if text else []
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            tool_names[call.get("id") or ""] = function.get("name") or "tool"
            lines.append(f"Assistant called {function.get('name')}"
                         f"({function.get('arguments') or ''})")
        return "\n".join(lines) or "Assistant: (no text)"
    return f"{str(role).capitalize()}: {text}"


def render_transcript(messages: list[dict[str, Any]], previous_summary: str | None,
                      model: str, budget: int) -> str:
    """The messages as plain text for the summariser, at most ``budget`` tokens.

    Each message is cut to an eighth of the budget (tool output is what blows up); if the
    whole is still too long, the oldest messages are left out with a note, but the
    previous summary (which stands for everything older) is always kept.
    """
    per_message = max(64, budget // 8)
    note = "\n[... cut: {cut} tokens left out]"
    tool_names: dict[str, str] = {}
    entries = [tokens.truncate_to_tokens(_render(m, tool_names), model, per_message, note)
               for m in messages]
    head = []
    if previous_summary:
        head.append("Summary of what came before:\n" + tokens.truncate_to_tokens(
            previous_summary, model, per_message * 2, note))
    sizes = [tokens.count_text(e, model) + 1 for e in entries]
    room = budget - sum(tokens.count_text(h, model) + 1 for h in head)
    dropped = 0
    while entries and sum(sizes) > room - 16:
        entries.pop(0)
        sizes.pop(0)
        dropped += 1
    if dropped:
        head.append(f"[{dropped} older message(s) left out to fit the summariser's window]")
    return "\n\n".join([*head, *entries])


def summary_request(messages: list[dict[str, Any]], previous_summary: str | None,
                    model: str, window: int, budget: int) -> list[dict[str, Any]]:
    """The two messages of the summarisation call."""
    transcript = render_transcript(messages, previous_summary, model,
                                   int(window * TRANSCRIPT_WINDOW_SHARE))
    words = max(20, budget * 3 // 4)
    return [
        {"role": "system", "content": SUMMARY_PROMPT.format(words=words)},
        {"role": "user", "content": "Summarise this conversation:\n\n" + transcript},
    ]
