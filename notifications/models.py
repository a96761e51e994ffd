"""Where results are sent (destinations), what was sent (deliveries, the log), and which
chats announce the end of their turns (``ChatNotify``).

A destination's secrets (a Discord or Slack webhook URL is itself a secret; a generic
webhook has a URL and an HMAC key) are stored encrypted like profile API keys.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from profiles import crypto

KINDS = ("discord", "slack", "webhook", "email")


class Destination(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="destinations")
    name = models.SlugField(max_length=64)
    kind = models.CharField(max_length=10, choices=[(k, k) for k in KINDS])
    # The webhook URL (discord, slack, webhook) or the address list (email), encrypted.
    target_encrypted = models.TextField(editable=False)
    target_hint = models.CharField(max_length=80, blank=True, default="", editable=False)
    # The HMAC-SHA256 key of a generic webhook, encrypted ("" for other kinds).
    secret_encrypted = models.TextField(blank=True, default="", editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"],
                                               name="unique_destination_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def set_target(self, target: str) -> None:
        self.target_encrypted = crypto.encrypt(target)
        self.target_hint = hint_of(self.kind, target)

    def get_target(self) -> str:
        return crypto.decrypt(self.target_encrypted)

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret) if secret else ""

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted) if self.secret_encrypted else ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.pk, "name": self.name, "kind": self.kind,
                "target": self.target_hint, "has_secret": bool(self.secret_encrypted),
                "enabled": self.enabled, "created_at": self.created_at.isoformat()}


def hint_of(kind: str, target: str) -> str:
    """What the API shows of a target: enough to recognise it, never the secret part
    (a webhook URL's path is its credential)."""
    if kind == "email":
        return target[:80]
    scheme, _, rest = target.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/..."[:80]


class Delivery(models.Model):
    """One message to one destination, and the log of trying to send it."""

    STATUSES = ("pending", "sending", "delivered", "failed")

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE,
                                    related_name="deliveries")
    # What it reports on: "job_run:<id>" for a job run (the jobs app sets it).
    source = models.CharField(max_length=100, blank=True, default="")
    chat_id = models.UUIDField(null=True, blank=True)
    title = models.CharField(max_length=200)
    text = models.TextField()
    payload = models.JSONField(default=dict, blank=True)  # extra fields of a JSON webhook
    status = models.CharField(max_length=10, choices=[(s, s) for s in STATUSES],
                              default="pending")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    # Who sends it and until when (a sender that died frees it when this runs out).
    claimed_by = models.CharField(max_length=100, blank=True, default="")
    claim_until = models.DateTimeField(null=True, blank=True)
    log = models.JSONField(default=list, blank=True)  # [{at, status_code, error}]
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.title} -> {self.destination_id}: {self.status}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.pk, "destination": self.destination.name, "source": self.source,
                "chat_id": str(self.chat_id) if self.chat_id else None,
                "title": self.title, "status": self.status, "attempts": self.attempts,
                "next_attempt_at": self.next_attempt_at.isoformat()
                if self.status in ("pending", "sending") else None,
                "log": self.log, "created_at": self.created_at.isoformat(),
                "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None}


class ChatNotify(models.Model):
    """"Notify me when this turn ends": the destination (the chat owner's) told when a
    turn of the chat completes or ends in an error. Goes with the chat or the
    destination."""

    chat = models.OneToOneField("chats.Chat", primary_key=True, on_delete=models.CASCADE,
                                related_name="notify")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE,
                                    related_name="notified_chats")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.chat_id} -> {self.destination}"
