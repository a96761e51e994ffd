"""The audit log: append-only records of tool calls, configuration changes, sign-ins and
token events.

Rows are written by ``audit.services`` and never changed: ``save`` refuses an update and
``delete`` refuses, so neither the API nor the admin can edit the record. Only the
retention purge (``audit.services.purge``) removes old rows, in bulk.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

KINDS = ("tool_call", "config", "signin", "token", "user")


class AppendOnlyError(Exception):
    """Someone tried to change or delete an audit record."""


class AuditEvent(models.Model):
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=16, choices=[(k, k) for k in KINDS], db_index=True)
    # What happened, as a short verb: "bash", "created", "changed", "signed_in", ...
    action = models.CharField(max_length=64)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_name = models.CharField(max_length=150, blank=True, default="")
    # What it happened to: "profile fast", "chat <uuid>", "token abc..."
    target = models.CharField(max_length=200, blank=True, default="")
    chat_id = models.UUIDField(null=True, blank=True, db_index=True)
    client = models.CharField(max_length=100, blank=True, default="")
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["kind", "at"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.action} {self.target}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("audit records are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise AppendOnlyError("audit records are only removed by the retention purge")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "kind": self.kind,
                "action": self.action, "actor": self.actor_name or None,
                "target": self.target, "chat_id": str(self.chat_id) if self.chat_id else None,
                "client": self.client or None, "data": self.data}


class Verdict(models.Model):
    """Who answered a tool request, and from which socket: joined into the tool call's
    audit record when its result is known."""

    chat_id = models.UUIDField()
    tool_call_id = models.CharField(max_length=200)
    verdict = models.CharField(max_length=16)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                             related_name="+")
    username = models.CharField(max_length=150)
    socket = models.CharField(max_length=200)
    client = models.CharField(max_length=100, blank=True, default="")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["chat_id", "tool_call_id"])]
