"""Who may use which profile: the one place that answers it (REST, socket, turns)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from access.models import ProfileGrant
from gateway.errors import GatewayError
from profiles.models import ModelProfile


def is_admin(user: Any) -> bool:
    """Staff may use every profile."""
    return bool(getattr(user, "is_staff", False))


def allowed_profiles(user: Any) -> list[ModelProfile]:
    """The profiles ``user`` may use, in name order: open ones (no grant at all) and
    those granted to him or to one of his groups; every profile for an admin."""
    rows = ModelProfile.objects.all()
    if is_admin(user):
        return list(rows)
    granted = ProfileGrant.objects.filter(Q(user=user) | Q(group__user=user))
    return list(rows.filter(Q(grants__isnull=True) | Q(pk__in=granted.values("profile")))
                .distinct())


def may_use(user: Any, profile: ModelProfile) -> bool:
    if is_admin(user) or not profile.grants.exists():
        return True
    return profile.grants.filter(Q(user=user) | Q(group__user=user)).exists()


def check_use(user: Any, profile: ModelProfile, field: str | None = None) -> None:
    """Raise ``profile_not_allowed`` (403; 400 with ``field`` for a request body)."""
    if may_use(user, profile):
        return
    message = (f"You may not use profile {profile.name!r}; GET /api/profiles lists the "
               "ones you may use.")
    if field:
        raise GatewayError("profile_not_allowed", message, 400, {field: message})
    raise GatewayError("profile_not_allowed", message, 403)


def default_for(user: Any) -> ModelProfile | None:
    """The gateway's default profile when ``user`` may use it, else the first he may."""
    default = ModelProfile.get_default()
    if default is not None and may_use(user, default):
        return default
    allowed = allowed_profiles(user)
    return allowed[0] if allowed else None


def grants_listing() -> dict[str, Any]:
    """Every profile with who may use it (``open`` when nobody is named)."""
    result: dict[str, Any] = {}
    for profile in ModelProfile.objects.prefetch_related("grants__user", "grants__group"):
        grants = list(profile.grants.all())
        result[profile.name] = {
            "open": not grants,
            "users": sorted(g.user.get_username() for g in grants if g.user_id),
            "groups": sorted(g.group.name for g in grants if g.group_id),
        }
    return {"profiles": result}


def set_grants(profile: ModelProfile, users: list[Any], groups: list[Any]) -> None:
    """Replace who may use ``profile`` (empty lists open it to everyone)."""
    profile.grants.exclude(user__in=users, group__isnull=True) \
        .exclude(group__in=groups, user__isnull=True).delete()
    for user in users:
        ProfileGrant.objects.get_or_create(profile=profile, user=user)
    for group in groups:
        ProfileGrant.objects.get_or_create(profile=profile, group=group)
