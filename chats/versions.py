"""Retry, regenerate and edit-and-resend, without destroying history.

Sending a user message again makes a new queued user message that ``replaces`` it; the
old one and everything after it are marked ``superseded`` (and point at the new one
through ``superseded_by``). They stay in the database and in ``GET /api/chats/{id}``,
but the model is no longer sent them. The new message then runs as any queued message.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from agents import events as ev
from chats.models import Chat, Message
from chats.turns import get_manager
from gateway.errors import GatewayError


@transaction.atomic
def resend(chat_id: uuid.UUID, message_id: int, content: Any = None,
           stream: bool = True) -> dict[str, Any]:
    """Send the user message ``message_id`` (or the one an assistant or tool message
    ``message_id`` answered) again, with ``content`` when it is an edit. Returns
    ``{"message_id", "replaces", "superseded"}``."""
    chat = Chat.objects.select_for_update().get(pk=chat_id)
    if chat.turn_owner is not None or Message.objects.filter(chat=chat,
                                                             status="queued").exists():
        raise GatewayError("turn_running", "A turn is running or queued in this chat; "
                           "retry when it has finished (or cancel it).", 409)
    asked = _current_message(chat, message_id)
    source = asked if asked.role == "user" else Message.objects.filter(
        chat=chat, role="user", position__lt=asked.position).exclude(
        status="superseded").order_by("-position").first()
    if source is None or source.compacted:
        raise GatewayError("not_resendable", "This message cannot be sent again (it was "
                           "compacted, or no user message precedes it).", 400)
    new = Message.objects.create(chat=chat, role="user", status="queued", stream=stream,
                                 content=source.content if content is None else content,
                                 replaces=source)
    replaced = Message.objects.filter(chat=chat, position__gte=source.position) \
        .exclude(status__in=("superseded", "queued"))
    ids = list(replaced.values_list("id", flat=True))
    replaced.update(status="superseded", superseded_by=new)
    Chat.objects.filter(pk=chat.pk).update(updated_at=timezone.now())
    return {"message_id": new.id, "replaces": source.id, "superseded": ids}


def _current_message(chat: Chat, message_id: int) -> Message:
    msg = Message.objects.filter(chat=chat, pk=message_id).first()
    if msg is None:
        raise GatewayError("not_found", "No such message in this chat.", 404)
    if msg.status in ("superseded", "queued") or msg.position is None:
        raise GatewayError("not_current", "This message was already replaced (or has not "
                           "run yet); send the current version again instead.", 409)
    return msg


async def start(chat_id: str, message_id: int) -> None:
    """Announce the new message and run it (as ``TurnManager.submit`` does for a
    message that came over a socket)."""
    manager = get_manager()
    await manager.publish(chat_id, ev.QUEUED, {"message_id": message_id, "position": 1})
    # Not awaited, and in a fresh context: called from a sync view, this coroutine runs
    # while the view holds the thread that database calls go to, and its context holds
    # that request's executor, which ends with the request; the turn outlives both.
    task = asyncio.get_running_loop().create_task(manager.kick(chat_id),
                                                  context=contextvars.Context())
    manager.background.add(task)
    task.add_done_callback(manager.background.discard)
