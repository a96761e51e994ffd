"""A user's own workspace quota, set by an admin; without one the defaults
(``GATEWAY_FILES_QUOTA_BYTES``, ``GATEWAY_FILES_QUOTA_FILES``) apply."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class WorkspaceQuota(models.Model):
    """What one user's workspace may hold; an empty field means the default."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                primary_key=True, related_name="workspace_quota")
    quota_bytes = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="Bytes the workspace may hold; empty: GATEWAY_FILES_QUOTA_BYTES.")
    quota_files = models.PositiveBigIntegerField(
        null=True, blank=True,
        help_text="Files the workspace may hold; empty: GATEWAY_FILES_QUOTA_FILES.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "workspace quota"

    def __str__(self) -> str:
        return f"of {self.user}"
