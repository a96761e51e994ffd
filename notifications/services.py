"""Destinations: the one access check, creation and change; the destination a chat
notifies when its turns end, and the receiver of ``gateway.hooks.turn_ended``."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from gateway.errors import GatewayError
from gateway.shared_version import SharedVersion
from notifications import outbox
from notifications.models import ChatNotify, Destination
from notifications.targets import check_target


def get_destination_for(user: AbstractBaseUser, destination_id: Any) -> Destination:
    """The user's own destination; anyone else's is "not found"."""
    try:
        return Destination.objects.get(pk=int(destination_id), owner=user)
    except (ValueError, TypeError, Destination.DoesNotExist):
        raise GatewayError("not_found", "No such destination.", 404) from None


def destinations_named(user: AbstractBaseUser, names: list[str]) -> list[Destination]:
    """The user's destinations of these names; a missing one is a 400 on ``field``."""
    found = {d.name: d for d in Destination.objects.filter(owner=user, name__in=names)}
    missing = [n for n in names if n not in found]
    if missing:
        raise GatewayError("invalid_request", f"No destination named {missing[0]!r}.", 400,
                           {"destinations": f"Unknown destination {missing[0]!r}."})
    return [found[n] for n in names]


def _apply(destination: Destination, body: dict[str, Any]) -> None:
    if "target" in body:
        destination.set_target(check_target(destination.kind, body["target"]))
    if "secret" in body:
        destination.set_secret(body["secret"])
    if destination.kind == "webhook" and not destination.secret_encrypted:
        raise GatewayError("invalid_request", "A webhook needs a secret to sign with.", 400,
                           {"secret": "Required for a webhook (16 characters or more)."})
    if "enabled" in body:
        destination.enabled = body["enabled"]
    if "name" in body:
        destination.name = body["name"]


def save(destination: Destination) -> Destination:
    try:
        with transaction.atomic():
            destination.save()
    except IntegrityError:
        raise GatewayError("conflict", f"A destination named {destination.name!r} exists.",
                           409, {"name": "Already used."}) from None
    return destination


def create(user: AbstractBaseUser, body: dict[str, Any]) -> Destination:
    destination = Destination(owner=user, kind=body["kind"])
    _apply(destination, body)
    return save(destination)


def update(destination: Destination, body: dict[str, Any]) -> Destination:
    _apply(destination, body)
    return save(destination)


# --- "notify me when this turn ends" --------------------------------------------------

def chat_notify(chat: Any) -> dict[str, Any]:
    """The answer of ``/api/chats/<id>/notify``: the chosen destination, if any."""
    row = ChatNotify.objects.select_related("destination").filter(chat=chat).first()
    return {"chat_id": str(chat.pk), "destination": row.destination_id if row else None,
            "name": row.destination.name if row else None}


def set_chat_notify(user: AbstractBaseUser, chat: Any, destination_id: int | None
                    ) -> dict[str, Any]:
    """Choose (or, with None, drop) the destination told when the chat's turns end. Only
    the caller's own destinations (another user's is "not found", like a missing one);
    ``chat`` is the caller's (the view checked)."""
    if destination_id is None:
        ChatNotify.objects.filter(chat=chat).delete()
    else:
        destination = get_destination_for(user, destination_id)
        ChatNotify.objects.update_or_create(chat=chat, defaults={"destination": destination})
    return chat_notify(chat)


# Which chats have a destination to tell, kept per process under a version that every
# save or delete of a ``ChatNotify`` replaces (``notifications.apps``), so the end of a
# turn costs no query when its chat has none (most do not).
NOTIFY_VERSION = SharedVersion("gateway:chat-notify-version", "chat-notify-version")
_notified: tuple[str, frozenset[str]] = ("", frozenset())


def notified_chats() -> frozenset[str]:
    """The ids of the chats with a ``ChatNotify`` row, as ``str(UUID)``."""
    global _notified
    version = NOTIFY_VERSION.current()  # before the rows: a later change replaces it
    if _notified[0] != version:
        _notified = (version, frozenset(
            str(pk) for pk in ChatNotify.objects.values_list("chat_id", flat=True)))
    return _notified[1]


def _normal(chat_id: Any) -> str:
    try:
        return str(uuid.UUID(str(chat_id)))
    except ValueError:
        return str(chat_id)


def on_turn_ended(sender: Any, chat_id: str, message_id: int | None, stop_reason: str,
                  summary: Any, **kwargs: Any) -> None:
    """Queue a delivery of the turn's answer (or its error) to the chat's destination;
    the sender cuts it to the destination's limit with a link back to the chat."""
    if _normal(chat_id) not in notified_chats():
        return  # no query for the (many) chats nobody asked to be told about
    row = ChatNotify.objects.select_related("destination").filter(chat_id=chat_id).first()
    if row is None or not row.destination.enabled:
        return
    turn = summary()
    chat_title = turn["chat_title"] or "Untitled chat"
    outbox.enqueue([row.destination], source=f"chat_turn:{message_id or ''}",
                   chat_id=chat_id, title=f"{chat_title}: turn {turn['status']}",
                   text=turn["text"],
                   payload={"event": "chat.turn.finished", "chat_id": str(chat_id),
                            "message_id": message_id, "status": turn["status"],
                            "stop_reason": stop_reason})
