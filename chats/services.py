"""Chat actions called by the REST views (the consumer goes to ``chats.turns``)."""

from __future__ import annotations

import time
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from access.services import default_for
from chats import compaction, store, versions
from chats import system_prompt
from chats.models import Chat, Message, TurnError
from chats.turns import get_manager
from gateway.errors import GatewayError
from profiles.models import ModelProfile
from usage import services as usage_services
from usage import turns as usage_turns


def chat_detail(chat: Chat, user: AbstractBaseUser) -> dict[str, Any]:
    """The chat with its whole history, compacted messages included (marked)."""
    messages = Message.objects.filter(chat=chat).order_by("position", "id")
    body = chat.to_dict()
    body["messages"] = [m.to_dict() for m in messages if m.status != "queued"]
    body["queued"] = [m.to_dict() for m in messages if m.status == "queued"]
    body["running"] = store.snapshot(chat.id)["running"]
    body["compactions"] = [c.to_dict() for c in chat.compactions.order_by("id")]
    body["errors"] = [e.to_dict() for e in
                      TurnError.objects.filter(chat=chat).select_related("message")]
    # What the model is told (setup, tools, skills): for admins only.
    if getattr(user, "is_staff", False):
        body["system_prompt"] = system_prompt.preview(chat)
    return body


def resend(chat: Chat, message_id: int, content: Any = None,
           stream: bool = True) -> dict[str, Any]:
    """Retry, regenerate or edit: see ``chats.versions``. The new message runs at once."""
    result = versions.resend(chat.id, message_id, content, stream)
    async_to_sync(versions.start)(str(chat.id), result["message_id"])
    return result


def delete_chats(chats: list[Chat]) -> list[str]:
    """Delete chats (a running turn is cancelled first); returns their ids."""
    for chat in chats:
        if chat.turn_owner:  # only a chat holding the turn lock can have a turn to stop
            stop_turn(chat)
    ids = [str(chat.id) for chat in chats]
    Chat.objects.filter(pk__in=[chat.pk for chat in chats]).delete()
    return ids


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
    """The profile the chat's next turn uses (as ``chats.store`` picks it)."""
    return chat.profile or default_for(chat.owner)


def context_report(chat: Chat) -> dict[str, Any]:
    """How full the chat's context is for its model (see ``chats.compaction``)."""
    provider = store.provider_config(_profile_of(chat), with_key=False)
    window = compaction.window_of(provider)
    used = compaction.context_tokens(chat, provider)
    return {
        "current_tokens": used,
        "context_window": window,
        "compaction_threshold": settings.GATEWAY_COMPACTION_THRESHOLD,
        "percent_used": round(100.0 * used / window, 2),
    }


def compact(chat: Chat) -> dict[str, Any]:
    """Summarise all but the last exchanges now; the chat's sockets get the two
    compaction events. Refused while a turn runs: the turn holds the conversation."""
    if is_running(chat):
        raise GatewayError("turn_running", "A turn is running in this chat; compact when "
                           "it has finished (or cancel it).", 409)
    profile = _profile_of(chat)
    chat_id = str(chat.id)
    last_seq = store.chat_last_seq(chat.id)
    # The summary is a model call of the chat's owner: refused like a turn when he may
    # not use the profile or his budget is used up, and written to the usage ledger.
    charge, on_model_call = None, None
    if profile is not None:
        charge = usage_turns.admit_now(chat.owner_id, chat_id, profile.name)
        on_model_call = usage_turns.recorder(chat.owner_id, chat_id, profile.name, charge,
                                             purpose="compaction", to_async=sync_to_async)

    async def publish(event_type: str, data: dict[str, Any]) -> None:
        manager = get_manager()
        # Load the chat's event stream with the seq read above: the manager would read it
        # through database_sync_to_async, which closes this view's connection when it is
        # inside a transaction.
        if not manager.hub.is_loaded(chat_id):
            await manager.hub.load(chat_id, last_seq)
        await manager.publish(chat_id, event_type, data)

    try:
        result = async_to_sync(compaction.compact_chat)(
            chat.id, store.provider_config(profile), publish, trigger="manual",
            system_prompt=[compaction.system_prompt_for(chat)], require_idle=True,
            to_async=sync_to_async, on_model_call=on_model_call)
    except compaction.NothingToCompact as exc:
        raise GatewayError("not_enough_history", str(exc), 400) from None
    except compaction.CompactionFailed as exc:
        status = {"turn_running": 409, "no_profile": 400}.get(exc.code, 502)
        raise GatewayError(exc.code, str(exc), status) from None
    finally:
        usage_services.close_turn(charge)
    # No turn runs (checked above), so nobody else saves how far seq got: save it here,
    # or a restart would hand out the two compaction events' seqs again.
    store.save_last_seq(chat.id, async_to_sync(get_manager().hub.last_seq)(chat_id))
    return result.to_dict()


def switch_profile(chat: Chat, profile: ModelProfile) -> None:
    """Use ``profile`` for the chat's next turns; refused (400 ``context_too_large``)
    when the chat's context does not fit the new model's window."""
    provider = store.provider_config(profile, with_key=False)
    window = compaction.window_of(provider)
    used = compaction.context_tokens(chat, provider)
    if used >= window:
        raise GatewayError(
            "context_too_large",
            f"This chat's context is {used} tokens and does not fit the {window}-token "
            f"window of profile {profile.name!r} ({profile.model}): compact it first "
            f"(POST /api/chats/{chat.id}/compact), then switch.", 400)
    chat.profile = profile
    chat.save(update_fields=["profile", "updated_at"])
