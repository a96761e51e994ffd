"""The one ownership check: a user sees their own chats and no one else's."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser

from chats.models import Chat
from gateway.errors import GatewayError


def _not_found() -> GatewayError:
    return GatewayError("not_found", "No such chat.", 404)


def get_chat_for(user: AbstractBaseUser, chat_id: str | uuid.UUID) -> Chat:
    """The chat if ``user`` owns it. Another user's chat is "not found", exactly like a
    chat that does not exist, so ids cannot be probed."""
    try:
        key = chat_id if isinstance(chat_id, uuid.UUID) else uuid.UUID(str(chat_id))
        return Chat.objects.select_related("profile").get(pk=key, owner=user)
    except (ValueError, Chat.DoesNotExist):
        raise _not_found() from None


def chat_id_for(user: AbstractBaseUser, chat_id: str | uuid.UUID) -> uuid.UUID:
    """``get_chat_for``'s check alone, for a caller that needs only the id (a socket):
    one indexed lookup, no join (a join costs Django's PostgreSQL backend the building
    of a field per query, ``prepare_join_on_clause``, 5 % of a socket's interpreter time
    under load)."""
    try:
        key = chat_id if isinstance(chat_id, uuid.UUID) else uuid.UUID(str(chat_id))
    except ValueError:
        raise _not_found() from None
    if not Chat.objects.filter(pk=key, owner_id=user.pk).exists():
        raise _not_found()
    return key
