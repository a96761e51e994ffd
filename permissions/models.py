"""The permission policy and the sandbox config: one row each, edited by admins."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

MODES = ("interactive", "autonomous", "readonly")
LEVELS = ("allow", "ask", "deny")
WORKSPACE_MODES = ("rw", "ro")


class SingletonModel(models.Model):
    """A table with exactly one row (pk=1), created on first read."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> Any:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class PermissionPolicy(SingletonModel):
    mode = models.CharField(max_length=16, choices=[(m, m) for m in MODES], default="interactive")
    tool_overrides = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = verbose_name_plural = "permission policy"

    def __str__(self) -> str:
        return f"mode={self.mode}"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "tool_overrides": dict(self.tool_overrides)}


class SandboxConfig(SingletonModel):
    enabled = models.BooleanField(default=False)
    memory_limit_mb = models.PositiveIntegerField(default=512)
    cpu_seconds = models.PositiveIntegerField(default=30)
    timeout_seconds = models.PositiveIntegerField(default=30)
    network_enabled = models.BooleanField(default=False)
    workspace_mode = models.CharField(max_length=2, choices=[(m, m) for m in WORKSPACE_MODES],
                                      default="rw")
    updated_at = models.DateTimeField(auto_now=True)

    FIELDS = ("enabled", "memory_limit_mb", "cpu_seconds", "timeout_seconds",
              "network_enabled", "workspace_mode")

    class Meta:
        verbose_name = verbose_name_plural = "sandbox config"

    def __str__(self) -> str:
        return "sandbox " + ("enabled" if self.enabled else "disabled")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @property
    def sandboxed(self) -> bool:
        """Whether tools run in the sandbox. ``enabled`` can only turn it off when the
        operator allowed that with ``GATEWAY_UNSANDBOXED_TOOLS=true``; otherwise every
        chat's tools (an admin's too) are sandboxed whatever the row says."""
        return self.enabled or not settings.GATEWAY_UNSANDBOXED_TOOLS

    def policy(self) -> dict[str, Any]:
        """The settings tools run with: the row, with ``enabled`` as in force."""
        return dict(self.to_dict(), enabled=self.sandboxed)
