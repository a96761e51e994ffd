"""Revocation that reaches open sockets, on every server process.

A socket authenticates once, at its handshake; REST checks the token at every request.
So that revoking a token (``DELETE /api/tokens/<id>``, the admin, its expiry) or
deactivating or deleting a user also ends what that token or user has open, every socket
joins two channel-layer groups (``token_group``, ``user_group``), and the signals here
send ``auth.revoked`` to them once the change is committed. The channel layer is Redis
with several processes, so a socket on any process is told; it closes with 4001.

``revoked`` is sent as well, for anything that keeps tokens it checked (a cache in front
of ``gateway.auth.lookup_token``): arguments ``digests`` (the tokens' digests, may be
empty) and ``user_id`` (None when only tokens went).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from gateway.models import ApiToken

logger = logging.getLogger(__name__)

REVOKED_MESSAGE = {"type": "auth.revoked"}
revoked = Signal()


def token_group(digest: str) -> str:
    """The group of every socket opened with the token whose digest this is (a short
    hash of it: group names are limited to 100 characters)."""
    return "auth-token." + hashlib.sha256(digest.encode()).hexdigest()[:40]


def user_group(user_id: Any) -> str:
    return f"auth-user.{user_id}"


def _broadcast(groups: list[str]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        try:
            async_to_sync(layer.group_send)(group, dict(REVOKED_MESSAGE))
        except Exception:  # noqa: BLE001 - the revocation itself stands; REST refuses it
            logger.exception("could not tell the sockets of %s that it was revoked", group)


def announce(digests: list[str], user_id: Any = None) -> None:
    """After the current transaction commits: tell caches and open sockets."""
    groups = [token_group(d) for d in digests]
    if user_id is not None:
        groups.append(user_group(user_id))

    def send() -> None:
        revoked.send(sender=ApiToken, digests=list(digests), user_id=user_id)
        _broadcast(groups)

    transaction.on_commit(send)


@receiver(post_delete, sender=ApiToken, dispatch_uid="gateway.revocation.token")
def _token_deleted(sender: Any, instance: ApiToken, **kwargs: Any) -> None:
    # Revoked by its owner or an admin, expired and swept, or its user deleted (cascade).
    announce([instance.digest])


@receiver(post_save, dispatch_uid="gateway.revocation.user_saved")
def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if sender is get_user_model() and not created and not instance.is_active:
        announce([], instance.pk)


@receiver(post_delete, dispatch_uid="gateway.revocation.user_deleted")
def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    if sender is get_user_model():
        announce([], instance.pk)
