"""Chat actions called by the REST views (the consumer goes to ``chats.turns``)."""

from __future__ import annotations

import time
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth.models import AbstractBaseUser

from agents import tokens
from chats import store
from chats.models import Chat, Message
from chats.turns import get_manager
from gateway_project.errors import GatewayError
from profiles.models import ModelProfile


def chat_detail(chat: Chat, user: AbstractBaseUser) -> dict[str, Any]:
    """The chat with its whole history, compacted messages included (marked)."""
    messages = Message.objects.filter(chat=chat).order_by("position", "id")
    body = chat.to_dict()
    body["messages"] = [m.to_dict() for m in messages if m.status != "queued"]
    body["queued"] = [m.to_dict() for m in messages if m.status == "queued"]
    body["running"] = store.snapshot(chat.id)["running"]
    return body


def is_running(chat: Chat) -> bool:
    return bool(store.snapshot(chat.id)["running"])


def request_cancel(chat: Chat) -> bool:
    """Ask the running turn (in whatever process) to stop; False when none runs."""
    if not is_running(chat):
        return False
    async_to_sync(get_manager().cancel)(str(chat.id))
    return True


def stop_turn(chat: Chat, wait: float = 5.0) -> None:
    """Cancel a running turn and wait (bounded) until it let go of the chat."""
    if not request_cancel(chat):
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and is_running(chat):
        time.sleep(0.05)


def _profile_of(chat: Chat) -> ModelProfile | None:
    return chat.profile or ModelProfile.get_default()


def current_tokens(chat: Chat, model: str) -> int:
    return tokens.count_messages(store.history_for_model(chat.id), model)


def context_report(chat: Chat) -> dict[str, Any]:
    profile = _profile_of(chat)
    model = profile.model if profile else ""
    window = tokens.context_window_for(model, profile.context_window if profile else None)
    used = current_tokens(chat, model)
    from django.conf import settings
    return {
        "current_tokens": used,
        "context_window": window,
        "compaction_threshold": settings.GATEWAY_COMPACTION_THRESHOLD,
        "percent_used": round(100.0 * used / window, 2) if window else 0.0,
    }


def compact(chat: Chat) -> dict[str, Any]:
    if is_running(chat):
        raise GatewayError("turn_running", "A turn is running in this chat; compact when "
                           "it has finished (or cancel it).", 409)
    raise GatewayError("not_enough_history", "There is nothing to compact yet: compaction "
                       "keeps the last exchanges verbatim and needs older ones to "
                       "summarise.", 400)


def switch_profile(chat: Chat, profile: ModelProfile) -> None:
    chat.profile = profile
    chat.save(update_fields=["profile", "updated_at"])
