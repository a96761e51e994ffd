"""The one ownership check: a user sees their own chats and no one else's."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractBaseUser

from chats.models import Chat
from gateway.errors import GatewayError


def get_chat_for(user: AbstractBaseUser, chat_id: str | uuid.UUID) -> Chat:
    """The chat if ``user`` owns it. Another user's chat is "not found", exactly like a
    chat that does not exist, so ids cannot be probed."""
    try:
        key = chat_id if isinstance(chat_id, uuid.UUID) else uuid.UUID(str(chat_id))
        return Chat.objects.select_related("profile").get(pk=key, owner=user)
    except (ValueError, Chat.DoesNotExist):
        raise GatewayError("not_found", "No such chat.", 404) from None
