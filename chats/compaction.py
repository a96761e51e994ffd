"""Context accounting and compaction of chats: the database side of
:mod:`agents.compaction`.

- :func:`context_tokens` counts what the next model call of a chat would send (system
  prompt, latest summary, uncompacted messages, tool schemas) by the rule in
  ``agents.compaction``: the last reply's reported ``usage.input_tokens`` plus an offline
  count of what came after it, or an offline count of everything. The reported usage is
  only trusted when it was produced after the latest compaction and by the same model
  family as the one counting (another tokenizer counts differently).
- :func:`compact_chat` is the one compaction, for both triggers: plan (all but the last
  ``GATEWAY_COMPACTION_KEEP_EXCHANGES`` exchanges), emit ``agent.compaction_started``,
  ask the chat's model for a summary (one non-streamed call, told to ``on_model_call``
  like every model call of a turn: it goes to the usage ledger as a ``compaction`` and
  counts against the budgets), then in one transaction
  mark the replaced messages ``compacted`` and store a :class:`Compaction`, and emit
  ``agent.context_compacted``. Nothing is deleted.
- :func:`auto_compactor` is the turn's ``prepare`` hook: before each model call it cuts
  oversized tool results to a quarter of the window and compacts when the context has
  passed ``GATEWAY_COMPACTION_THRESHOLD`` of the window. A failed summary does not stop
  the turn: ``agent.error`` ``compaction_failed``, and the call goes on uncompacted.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, NoReturn

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents import compaction as planning
from agents import events as ev
from agents import toolbox, tokens
from agents.compaction import Anchor
from agents.loop import Emit, ModelCall, OnModelCall, Prepare
from agents.providers import ProviderConfig, UpstreamError, call_model
from chats import store
from chats import system_prompt as chat_prompt
from chats.models import Chat, Compaction, Message
from gateway.infra import db

logger = logging.getLogger(__name__)


class NothingToCompact(Exception):
    """No exchange older than the kept ones."""


class CompactionFailed(Exception):
    """The summary could not be made or stored; nothing was compacted. ``code`` is the
    REST error code that fits (``compaction_failed`` or ``turn_running``)."""

    def __init__(self, message: str, code: str = "compaction_failed") -> None:
        super().__init__(message)
        self.code = code


# --- counting ----------------------------------------------------------------------

def window_of(provider: ProviderConfig | None) -> int:
    """The profile's ``context_window``, else the registry's, else the default."""
    if provider is None:
        return tokens.DEFAULT_CONTEXT_WINDOW
    return tokens.context_window_for(provider.model, provider.context_window)


def _same_family(a: str, b: str) -> bool:
    """``gpt-4o-mini-2024-07-18`` (what the upstream reports) is ``gpt-4o-mini`` (what
    the profile asks for)."""
    a, b = tokens.normalize_model(a), tokens.normalize_model(b)
    return bool(a and b) and (a == b or a.startswith(b + "-") or b.startswith(a + "-"))


def anchor_for(chat_id: uuid.UUID, model: str) -> Anchor | None:
    """The usage of the latest model call that still describes the context (see module
    docstring), and how many uncompacted messages came from that call on."""
    since = Compaction.objects.filter(chat_id=chat_id).order_by("-id") \
        .values_list("created_at", flat=True).first()
    rows = Message.objects.filter(chat_id=chat_id, compacted=False, position__isnull=False,
                                  role="assistant", usage__isnull=False) \
        .exclude(status="superseded").only("position", "usage", "model", "created_at") \
        .order_by("-position")
    for row in rows[:50]:
        if since and row.created_at <= since:
            return None  # every earlier call was sent the history before the compaction
        used = (row.usage or {}).get("input_tokens")
        if isinstance(used, int) and used > 0 and _same_family(row.model, model):
            tail = Message.objects.filter(chat_id=chat_id, compacted=False,
                                          position__gte=row.position) \
                .exclude(role="system").exclude(status="superseded").count()
            return Anchor(used, tail)
    return None


def system_prompt_for(chat: Chat) -> dict[str, Any]:
    """The system message the chat's next turn will send (built without writing)."""
    return {"role": "system", "content": chat_prompt.preview(chat)}


def context_tokens(chat: Chat, provider: ProviderConfig | None) -> int:
    """Tokens the chat's next model call would send before its new message."""
    model = provider.model if provider else ""
    messages = planning.cap_tool_results(
        [system_prompt_for(chat), *store.history_for_model(chat.id)], model,
        window_of(provider))
    return planning.estimate_tokens(messages, toolbox.schemas(), model, anchor_for(chat.id, model))


# --- the compaction ----------------------------------------------------------------

@dataclass
class _Rows:
    """The uncompacted conversation: ids, positions and the messages as sent."""

    ids: list[int]
    positions: list[int]
    messages: list[dict[str, Any]]
    summary: str | None


def _load(chat_id: uuid.UUID) -> _Rows:
    rows = list(Message.objects.filter(chat_id=chat_id, compacted=False,
                                       position__isnull=False)
                .exclude(role="system").exclude(status="superseded").order_by("position"))
    latest = Compaction.objects.filter(chat_id=chat_id).order_by("-id").first()
    return _Rows([r.id for r in rows], [r.position for r in rows],  # type: ignore[misc]
                 [r.to_openai() for r in rows], latest.summary if latest else None)


@dataclass
class _Record:
    chat_id: uuid.UUID
    ids: list[int]
    positions: list[int]
    summary: str
    model: str
    trigger: str
    tokens_before: int
    tokens_after: int
    turns_removed: int


@transaction.atomic
def _apply(record: _Record, require_idle: bool) -> None:
    """Mark the replaced messages and store the record, or change nothing."""
    chat = Chat.objects.select_for_update().get(pk=record.chat_id)
    if require_idle and chat.turn_owner and chat.turn_lease_until \
            and chat.turn_lease_until >= timezone.now():
        raise CompactionFailed("A turn started while the summary was being written; "
                               "nothing was compacted. Try again when it has finished.",
                               code="turn_running")
    marked = Message.objects.filter(chat_id=record.chat_id, id__in=record.ids,
                                    compacted=False).update(compacted=True)
    if marked != len(record.ids):
        raise CompactionFailed("These messages were compacted meanwhile; nothing was "
                               "compacted again.")
    Compaction.objects.create(
        chat_id=record.chat_id, trigger=record.trigger, model=record.model,
        summary=record.summary, message_ids=record.ids, first_position=record.positions[0],
        last_position=record.positions[-1], tokens_before=record.tokens_before,
        tokens_after=record.tokens_after, turns_removed=record.turns_removed)


@dataclass
class Result:
    tokens_before: int
    tokens_after: int
    turns_removed: int
    messages: list[dict[str, Any]]  # what is sent from now on, system prompt first

    def to_dict(self) -> dict[str, int]:
        return {"tokens_before": self.tokens_before, "tokens_after": self.tokens_after,
                "turns_removed": self.turns_removed}


async def _ignore(_: str) -> None:
    return None


async def _summarise(provider: ProviderConfig, rows: _Rows, cut: int, window: int,
                     on_model_call: OnModelCall | None) -> str:
    """One non-streamed call of the chat's model, told to ``on_model_call`` once it
    answered (also when the summary is empty: the tokens were used); raises
    UpstreamError."""
    model = provider.model
    replaced = rows.messages[:cut]
    replaced_tokens = sum(tokens.count_message(m, model) for m in replaced)
    if rows.summary:
        replaced_tokens += tokens.count_message(planning.summary_message(rows.summary), model)
    budget = planning.summary_budget(window, replaced_tokens)
    request = planning.summary_request(replaced, rows.summary, model, window, budget)
    # No max_tokens of our own: reasoning models refuse the parameter (or spend it on
    # thinking); the prompt asks for the length and the cut below enforces it.
    started = time.perf_counter()
    reply = await call_model(provider, request, [], stream=False, on_delta=_ignore,
                             timeout=settings.GATEWAY_UPSTREAM_TIMEOUT,
                             retries=settings.GATEWAY_UPSTREAM_RETRIES)
    if on_model_call is not None:
        await on_model_call(ModelCall(reply.model or model, reply.input_tokens,
                                      reply.output_tokens,
                                      round((time.perf_counter() - started) * 1000)))
    text = reply.text.strip()
    if not text:
        raise UpstreamError(f"{provider.describe()}: the summary came back empty")
    # A model that writes more than asked must not undo the point of compacting.
    return tokens.truncate_to_tokens(text, model, budget, "\n[... summary cut]")


async def compact_chat(chat_id: uuid.UUID, provider: ProviderConfig | None, emit: Emit, *,
                       trigger: str, system_prompt: list[dict[str, Any]],
                       tokens_before: int | None = None, require_idle: bool = False,
                       to_async: Callable[..., Any] = db,
                       on_model_call: OnModelCall | None = None) -> Result:
    """Summarise all but the last exchanges of the chat (module docstring).

    ``on_model_call`` is told of the summary call (the usage ledger's recorder).
    ``system_prompt`` is what goes before the summary: the system message, or nothing.
    ``to_async`` wraps the database calls: ``gateway.infra.db`` in a turn (it
    recycles stale connections); ``sync_to_async`` from a sync view under
    ``async_to_sync`` (the view's own connection, which may be inside a transaction).
    Raises NothingToCompact (nothing emitted), or CompactionFailed after emitting
    ``agent.error`` ``compaction_failed`` (nothing changed).
    """
    keep = settings.GATEWAY_COMPACTION_KEEP_EXCHANGES
    rows = await to_async(_load)(chat_id)
    plan = planning.plan_compaction(rows.messages, keep)
    if plan is None:
        have = len(planning.exchange_starts(rows.messages))
        raise NothingToCompact(
            f"There is nothing to compact: the context holds {have} exchange(s) and "
            f"compaction keeps the last {keep} verbatim, so it needs at least {keep + 1}.")
    if provider is None:
        raise CompactionFailed("No model profile is set for this chat and there is no "
                               "default to write the summary: an admin creates one with "
                               "POST /api/profiles.", code="no_profile")
    model, window, tools = provider.model, window_of(provider), toolbox.schemas()
    if tokens_before is None:
        summary_head = [planning.summary_message(rows.summary)] if rows.summary else []
        sent = planning.cap_tool_results([*system_prompt, *summary_head, *rows.messages],
                                         model, window)
        anchor = await to_async(anchor_for)(chat_id, model)
        tokens_before = planning.estimate_tokens(sent, tools, model, anchor)
    await emit(ev.COMPACTION_STARTED, {"tokens_before": tokens_before,
                                       "context_window": window})
    try:
        summary = await _summarise(provider, rows, plan.cut, window, on_model_call)
    except UpstreamError as exc:
        return await _failed(emit, CompactionFailed(
            f"The summary of the older exchanges could not be made ({exc}); nothing was "
            "compacted."))
    after = planning.cap_tool_results(
        [*system_prompt, planning.summary_message(summary), *rows.messages[plan.cut:]], model,
        window)
    result = Result(tokens_before, planning.estimate_tokens(after, tools, model), plan.removed,
                    after)
    try:
        record = _Record(chat_id, rows.ids[:plan.cut], rows.positions[:plan.cut], summary,
                         model, trigger, result.tokens_before, result.tokens_after,
                         result.turns_removed)
        await to_async(_apply)(record, require_idle)
    except CompactionFailed as exc:
        return await _failed(emit, exc)
    await emit(ev.CONTEXT_COMPACTED, result.to_dict())
    return result


async def _failed(emit: Emit, exc: CompactionFailed) -> NoReturn:
    await emit(ev.ERROR, {"code": "compaction_failed", "message": str(exc)})
    raise exc


# --- automatic, before each model call ----------------------------------------------

class AutoCompactor:
    """The ``prepare`` hook of one turn (module docstring)."""

    def __init__(self, chat_id: str, provider: ProviderConfig, emit: Emit,
                 on_model_call: OnModelCall | None = None) -> None:
        self.chat_id = uuid.UUID(chat_id)
        self.provider = provider
        self.emit = emit
        self.on_model_call = on_model_call
        self.window = window_of(provider)
        self.gave_up = False  # one failed summary per turn is enough

    async def __call__(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        model = self.provider.model
        messages = planning.cap_tool_results(messages, model, self.window)
        if self.gave_up or not messages:
            return messages
        exchanges = len(planning.exchange_starts(messages))
        keep = settings.GATEWAY_COMPACTION_KEEP_EXCHANGES
        threshold = settings.GATEWAY_COMPACTION_THRESHOLD
        if exchanges <= keep:  # nothing could be compacted: spare the count
            return messages
        if planning.upper_bound_tokens(messages, toolbox.schemas()) <= threshold * self.window:
            return messages  # surely below the threshold: spare the tokenizer
        anchor = await db(anchor_for)(self.chat_id, model)
        used = planning.estimate_tokens(messages, toolbox.schemas(), model, anchor)
        if not planning.should_compact(used, self.window, threshold, exchanges, keep):
            return messages
        first = messages[0]
        system = [first] if first.get("role") == "system" \
            and not planning.is_summary_message(first) else []
        try:
            result = await compact_chat(self.chat_id, self.provider, self.emit,
                                        trigger="auto", system_prompt=system,
                                        tokens_before=used,
                                        on_model_call=self.on_model_call)
        except NothingToCompact:
            return messages
        except CompactionFailed:
            self.gave_up = True
            return messages
        except Exception:  # noqa: BLE001 - a compaction bug must not end the turn
            logger.exception("automatic compaction of chat %s failed", self.chat_id)
            self.gave_up = True
            await self.emit(ev.ERROR, {"code": "compaction_failed", "message":
                                       "Compacting the context failed on the server (it was "
                                       "logged); the turn goes on uncompacted."})
            return messages
        return result.messages


def auto_compactor(chat_id: str, setup: store.TurnSetup, emit: Emit,
                   on_model_call: OnModelCall | None = None) -> Prepare | None:
    """The hook that compacts the context before a model call when it is too full;
    ``on_model_call`` is told of each summary call (the turn's usage recorder)."""
    if setup.provider is None:
        return None
    return AutoCompactor(chat_id, setup.provider, emit, on_model_call)
