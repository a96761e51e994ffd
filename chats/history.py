"""What a turn leaves in the chat's history besides its messages: the errors it ran
into (kept as ``TurnError`` records with a sentence a person can act on and the
technical text folded away), and the chat's title after its first reply (a model call
like any other: it goes to the usage ledger as a ``title`` and counts against the
budgets; it is not made for a user whose budget is used up).

``observe`` is the one hook the turn runner calls for the events it sends; it looks at
errors and at the end of a turn only, never at deltas. At the end of a turn it also
sends ``gateway.hooks.turn_ended`` (off the turn's path), which other apps receive
(``notifications`` tells the destination chosen for the chat).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any, Awaitable, Callable

from django.db.models import Max

from agents import events as ev
from agents.loop import ModelCall
from agents.providers import UpstreamError, call_model
from chats import store, titles
from chats.models import Chat, Message, TurnError
from gateway import hooks
from gateway.infra import db
from profiles.models import ModelProfile
from usage import turns as usage_turns
from usage.services import over_budget

logger = logging.getLogger(__name__)

Publish = Callable[[str, dict[str, Any]], Awaitable[Any]]
WATCHED = frozenset({ev.ERROR, ev.TURN_COMPLETE})

# Upstream failures, by what the technical text says, as sentences a person can act on.
_UPSTREAM_SENTENCES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"HTTP 429"), "The model provider is limiting requests right now. Wait a "
     "moment, then retry."),
    (re.compile(r"HTTP 40[13]"), "The model provider refused the profile's API key. An "
     "admin should check the key in Settings."),
    (re.compile(r"HTTP 404"), "The model provider does not know this model or address. An "
     "admin should check the profile in Settings."),
    (re.compile(r"HTTP 5\d\d"), "The model provider had an internal error. Retry in a "
     "moment."),
    (re.compile(r"connection failed|ConnectError", re.I), "The model provider could not be "
     "reached. Retry, or ask an admin to check the profile's address."),
    (re.compile(r"timed out|timeout", re.I), "The model provider did not answer in time. "
     "Retry."),
]
_UPSTREAM_DEFAULT = "The model provider answered with an error. Retry, or ask an admin " \
                    "to check the profile."


def human_sentence(code: str, detail: str) -> str:
    """The sentence shown for an error; the technical ``detail`` is shown folded."""
    if code != "upstream_error":
        return detail  # the gateway's own messages are already written for people
    for pattern, sentence in _UPSTREAM_SENTENCES:
        if pattern.search(detail):
            return sentence
    return _UPSTREAM_DEFAULT


def keep_error(chat_id: str, message_id: int | None, code: str, detail: str) -> TurnError:
    """Store an error of the turn that answers ``message_id`` after its last message."""
    last = Message.objects.filter(chat_id=chat_id).aggregate(top=Max("position"))["top"]
    text = human_sentence(code, detail)
    return TurnError.objects.create(
        chat_id=chat_id, message_id=message_id, after_position=last, code=code, text=text,
        detail=detail if detail != text else "")


async def observe(chat_id: str, message_id: int | None, wants_title: bool,
                  event_type: str, data: dict[str, Any], publish: Publish,
                  background: set[asyncio.Task[Any]]) -> dict[str, Any]:
    """Called by the turn runner for the ``WATCHED`` events it sends; returns the data
    to send (an error gains its sentence, its detail and its record's id)."""
    if event_type == ev.ERROR:
        detail = str(data.get("message", ""))
        record = await db(keep_error)(chat_id, message_id, data["code"],
                                                          detail)
        return {**data, "message": record.text, "detail": record.detail,
                "error_id": record.id}
    if event_type == ev.TURN_COMPLETE:
        stop_reason = str(data.get("stop_reason") or "")
        if hooks.turn_ended.has_listeners():
            _in_background(background, _announce(chat_id, message_id, stop_reason))
        if wants_title and stop_reason != "error":
            # After the turn's events, so the reply is never held up by the title call.
            _in_background(background, title_after_first_reply(uuid.UUID(chat_id), publish))
    return data


def _in_background(background: set[asyncio.Task[Any]], work: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(work)
    background.add(task)
    task.add_done_callback(background.discard)


# --- the end of a turn, for other apps -------------------------------------------------

def turn_summary(chat_id: str, message_id: int | None, stop_reason: str) -> dict[str, Any]:
    """What a turn left: the chat's title, ``completed`` or ``failed``, and its text (the
    last answer of the turn; for a failed turn the errors' sentences after it)."""
    title = Chat.objects.filter(pk=chat_id).values_list("title", flat=True).first() or ""
    prompt = Message.objects.filter(pk=message_id, chat_id=chat_id) \
        .values("position").first() if message_id else None
    replies = Message.objects.filter(chat_id=chat_id, role="assistant")
    if prompt and prompt["position"] is not None:
        replies = replies.filter(position__gt=prompt["position"])
        later = Message.objects.filter(chat_id=chat_id, role="user",
                                       position__gt=prompt["position"]) \
            .order_by("position").values_list("position", flat=True).first()
        if later is not None:
            replies = replies.filter(position__lt=later)
        texts = [titles.text_of(m.content).strip() for m in replies.order_by("position")]
        answer = next((t for t in reversed(texts) if t), "")
    else:
        answer = ""
    failed = stop_reason == "error"
    parts = [answer] if answer else []
    if failed and message_id:
        parts += list(TurnError.objects.filter(chat_id=chat_id, message_id=message_id)
                      .values_list("text", flat=True))
    text = "\n\n".join(parts) or f"The turn ended without an answer ({stop_reason})."
    return {"chat_title": title, "status": "failed" if failed else "completed",
            "text": text}


async def _announce(chat_id: str, message_id: int | None, stop_reason: str) -> None:
    try:
        await db(announce_end)(chat_id, message_id, stop_reason)
    except Exception as exc:  # noqa: BLE001 - the database is away: nothing to announce
        logger.warning("could not announce the end of a turn of chat %s: %r", chat_id, exc)


def announce_end(chat_id: str, message_id: int | None, stop_reason: str) -> None:
    """Send ``hooks.turn_ended`` (from a thread: receivers may use the database)."""
    results = hooks.turn_ended.send_robust(
        sender=Chat, chat_id=chat_id, message_id=message_id, stop_reason=stop_reason,
        summary=lambda: turn_summary(chat_id, message_id, stop_reason))
    for receiver, result in results:
        if isinstance(result, Exception):
            logger.error("turn_ended receiver %r failed for chat %s", receiver, chat_id,
                         exc_info=result)


# --- the model-written title ---------------------------------------------------

def _first_exchange(chat_id: uuid.UUID
                    ) -> tuple[Any, Chat, list[dict[str, Any]], bool] | None:
    """The provider, the chat, its first question and answer, and whether the owner's
    budget is used up, when the model may title this chat; None otherwise."""
    chat = Chat.objects.select_related("profile").filter(pk=chat_id).first()
    profile = (chat.profile or ModelProfile.get_default()) if chat else None
    if chat is None or profile is None or not profile.auto_title or not chat.title_auto:
        return None
    rows = Message.objects.filter(chat_id=chat_id, role__in=("user", "assistant"),
                                  status="done").order_by("position")[:2]
    exchange = [{"role": m.role, "content": titles.text_of(m.content)[:2000]} for m in rows]
    if [m["role"] for m in exchange] != ["user", "assistant"]:
        return None
    return store.provider_config(profile), chat, exchange, over_budget(chat.owner_id)


def _save(chat_id: uuid.UUID, title: str) -> bool:
    return bool(Chat.objects.filter(pk=chat_id, title_auto=True).update(title=title))


async def title_after_first_reply(chat_id: uuid.UUID,
                                  publish: Callable[[str, dict[str, Any]], Awaitable[Any]]
                                  ) -> None:
    """Ask the model for a short title and tell the chat's sockets (``agent.title``).
    The call is recorded in the usage ledger (``title``) for the chat's owner; an owner
    whose budget is used up keeps the title from the first message (no model call)."""
    found = await db(_first_exchange)(chat_id)
    if found is None:
        return
    provider, chat, exchange, spent = found
    if spent:
        logger.info("no model-written title for chat %s: the owner's budget is used up",
                    chat_id)
        return
    transcript = "\n\n".join(f"{m['role']}: {m['content']}" for m in exchange)

    async def ignore(_text: str) -> None:
        return None

    try:
        prompt = [{"role": "system", "content": titles.TITLE_PROMPT},
                  {"role": "user", "content": transcript}]
        started = time.perf_counter()
        reply = await call_model(provider, prompt, [], stream=False, on_delta=ignore,
                                 timeout=30, retries=0)
    except UpstreamError as exc:
        logger.info("no model-written title for chat %s: %s", chat_id, exc)
        return
    record = usage_turns.recorder(chat.owner_id, str(chat_id), provider.name, None,
                                  purpose="title")
    await record(ModelCall(reply.model or provider.model, reply.input_tokens,
                           reply.output_tokens, round((time.perf_counter() - started) * 1000)))
    title = titles.clean(reply.text)
    if title and await db(_save)(chat_id, title):
        await publish(ev.TITLE, {"title": title})
