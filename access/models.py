"""Which users and groups may use a model profile.

A profile with no grant is open to every member; once an admin grants it to some users
or groups, only they (and admins) may use it. So a fresh gateway works as before, and
restricting a costly model is one grant.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

from profiles.models import ModelProfile


class ProfileGrant(models.Model):
    """One user or one group may use one profile."""

    profile = models.ForeignKey(ModelProfile, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.CASCADE, related_name="profile_grants")
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="profile_grants")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["profile__name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(user__isnull=False, group__isnull=True)
                           | models.Q(user__isnull=True, group__isnull=False)),
                name="grant_to_user_or_group"),
            models.UniqueConstraint(fields=["profile", "user"], name="one_grant_per_user"),
            models.UniqueConstraint(fields=["profile", "group"], name="one_grant_per_group"),
        ]

    def __str__(self) -> str:
        who = f"user {self.user}" if self.user_id else f"group {self.group}"
        return f"{self.profile.name} -> {who}"

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile.name,
                "user": self.user.get_username() if self.user_id else None,
                "group": self.group.name if self.group_id else None}
