"""Managing the team's users: create, invite, promote, demote, deactivate.

An invite is a one-time sign-in link made by Django's password-reset token generator:
the token is bound to the user's password hash and last sign-in, so it stops working as
soon as it has been used to set a password (and when ``PASSWORD_RESET_TIMEOUT`` passes).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from gateway.errors import GatewayError

User = get_user_model()


def user_dict(user: Any) -> dict[str, Any]:
    return {"username": user.get_username(), "email": user.email,
            "is_staff": user.is_staff, "is_active": user.is_active,
            "has_password": user.has_usable_password(),
            "groups": sorted(g.name for g in user.groups.all()),
            "last_login": user.last_login.isoformat() if user.last_login else None,
            "date_joined": user.date_joined.isoformat()}


def user_by_name(username: str) -> Any:
    user = User.objects.filter(username=username).first()
    if user is None:
        raise GatewayError("not_found", f"No user named {username!r}.", 404)
    return user


def groups_named(names: list[str]) -> list[Group]:
    found = {g.name: g for g in Group.objects.filter(name__in=names)}
    missing = sorted(set(names) - set(found))
    if missing:
        message = "Unknown group(s): " + ", ".join(missing[:20])
        raise GatewayError("invalid_request", message, 400, {"groups": message})
    return list(found.values())


@transaction.atomic
def create_user(username: str, email: str = "", is_staff: bool = False,
                groups: list[str] | None = None, password: str | None = None) -> Any:
    if User.objects.filter(username=username).exists():
        raise GatewayError("user_exists", f"A user named {username!r} exists.", 409,
                           {"username": "Already taken."})
    user = User(username=username, email=email, is_staff=is_staff, is_superuser=is_staff)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()  # until the invite link sets one
    user.save()
    if groups:
        user.groups.set(groups_named(groups))
    return user


def _would_lock_out(actor: Any, user: Any, changes: dict[str, Any]) -> str | None:
    """Why a change must be refused so that the gateway keeps an admin (None: fine)."""
    losing = changes.get("is_staff") is False or changes.get("is_active") is False
    if not losing or not (user.is_staff and user.is_active):
        return None
    if user.pk == actor.pk:
        return "You cannot demote or deactivate yourself; another admin can."
    if not User.objects.filter(is_staff=True, is_active=True).exclude(pk=user.pk).exists():
        return "This is the last active admin."
    return None


@transaction.atomic
def update_user(actor: Any, user: Any, changes: dict[str, Any]) -> Any:
    """Promote, demote, (de)activate, set email or groups. Deactivating ends the user's
    tokens' use at once (authentication refuses inactive users)."""
    reason = _would_lock_out(actor, user, changes)
    if reason:
        raise GatewayError("would_lock_out", reason, 409)
    for key in ("email", "is_staff", "is_active"):
        if key in changes:
            setattr(user, key, changes[key])
    if "is_staff" in changes:
        user.is_superuser = changes["is_staff"]
    user.save()
    if "groups" in changes:
        user.groups.set(groups_named(changes["groups"]))
    return user


def invite_link(user: Any, base_url: str) -> dict[str, Any]:
    """A one-time link that lets ``user`` set a password and signs him in."""
    if not user.is_active:
        raise GatewayError("user_inactive", "Activate the user before inviting him.", 409)
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    expires = timezone.now() + dt.timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)
    return {"url": f"{base_url.rstrip('/')}/invite/{uid}/{token}/",
            "expires_at": expires.isoformat()}
