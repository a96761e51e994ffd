"""Chats, their messages (the conversation as the model sees it) and pending approvals."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models


class Chat(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="chats")
    title = models.CharField(max_length=200, blank=True, default="")
    # True while the server chose the title (from the first message, or the model's
    # short title after the first reply); a title a person set is never overwritten.
    title_auto = models.BooleanField(default=False)
    profile = models.ForeignKey("profiles.ModelProfile", null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="chats")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The per-chat turn lock: who runs the turn and until when the lease holds. A
    # conditional UPDATE takes it, so it holds across processes.
    turn_owner = models.CharField(max_length=100, null=True, blank=True, editable=False)
    turn_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Tools the user allowed "for this chat" in an approval prompt.
    allowed_tools = models.JSONField(default=list, blank=True)
    # The last event seq, saved when a turn ends so seq keeps rising across restarts.
    last_seq = models.BigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at", "-id"]),
                   # Listings go by last activity (a new message bumps updated_at).
                   models.Index(fields=["owner", "-updated_at", "-id"])]

    def __str__(self) -> str:
        return self.title or str(self.id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chat_id": str(self.id),
            "title": self.title,
            "profile": self.profile.name if self.profile_id and self.profile else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def openai_message(role: str, content: Any, tool_calls: Any, tool_call_id: str
                   ) -> dict[str, Any]:
    """A stored message as the model is sent it (``Message.OPENAI_FIELDS``, in order)."""
    msg: dict[str, Any] = {"role": role, "content": content}
    if role == "assistant" and tool_calls:
        msg["tool_calls"] = tool_calls
    if role == "tool":
        msg["tool_call_id"] = tool_call_id
    return msg


class Message(models.Model):
    ROLES = ("system", "user", "assistant", "tool")
    # ``superseded``: replaced by a retry, a regenerate or an edit. Kept (and returned
    # by the API) but no longer part of the conversation the model is sent.
    STATUSES = ("queued", "done", "interrupted", "cancelled", "superseded")

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    # Place in the conversation; null while a user message waits in the queue, set when
    # its turn starts, so a queued message never lands inside the running turn.
    position = models.PositiveIntegerField(null=True, blank=True)
    role = models.CharField(max_length=10, choices=[(r, r) for r in ROLES])
    content = models.JSONField(null=True, blank=True)  # str, or a list of content blocks
    tool_calls = models.JSONField(null=True, blank=True)
    tool_call_id = models.CharField(max_length=200, blank=True, default="")
    tool_name = models.CharField(max_length=200, blank=True, default="")
    is_error = models.BooleanField(default=False)
    usage = models.JSONField(null=True, blank=True)
    model = models.CharField(max_length=200, blank=True, default="")
    status = models.CharField(max_length=12, choices=[(s, s) for s in STATUSES], default="done")
    stream = models.BooleanField(default=True)  # how a queued user message asked to run
    compacted = models.BooleanField(default=False)
    # Versions: a user message sent again (retry, regenerate, edit) ``replaces`` the one
    # it was made from; the replaced messages point at it through ``superseded_by``.
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="versions")
    superseded_by = models.ForeignKey("self", null=True, blank=True,
                                      on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]
        indexes = [
            models.Index(fields=["chat", "position"]),
            models.Index(fields=["chat", "status"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["chat", "position"], name="unique_message_position"),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.position}"

    # The fields ``to_openai`` reads, for ``values_list`` (no model instance per row).
    OPENAI_FIELDS = ("role", "content", "tool_calls", "tool_call_id")

    def to_openai(self) -> dict[str, Any]:
        """The message as the model is sent it."""
        return openai_message(self.role, self.content, self.tool_calls, self.tool_call_id)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "position": self.position,
            "role": self.role,
            "content": self.content,
            "status": self.status,
            "compacted": self.compacted,
            "current": self.status != "superseded",
            "created_at": self.created_at.isoformat(),
        }
        if self.replaces_id:
            body["replaces"] = self.replaces_id
        if self.superseded_by_id:
            body["superseded_by"] = self.superseded_by_id
        if self.tool_calls:
            body["tool_calls"] = self.tool_calls
        if self.role == "tool":
            body.update(tool_call_id=self.tool_call_id, tool_name=self.tool_name,
                        is_error=self.is_error)
        if self.usage:
            body["usage"] = self.usage
        if self.model:
            body["model"] = self.model
        return body


class TurnError(models.Model):
    """An error a turn ran into, kept in the chat's history: what happened (``code``),
    a sentence a person can act on (``message``) and the technical text (``detail``)."""

    # Codes after which the turn produced no answer: the dashboard offers Retry.
    RETRYABLE = frozenset({"upstream_error", "no_profile", "turn_failed", "interrupted"})

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="errors")
    # The user message whose turn failed; its status tells whether this is current.
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="errors")
    # Shown after the message at this position (the last one written before the error).
    after_position = models.PositiveIntegerField(null=True, blank=True)
    code = models.CharField(max_length=40)
    text = models.TextField()
    detail = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["chat", "id"])]

    def __str__(self) -> str:
        return f"{self.code} in {self.chat_id}"

    def to_dict(self) -> dict[str, Any]:
        current = self.message is None or self.message.status != "superseded"
        return {
            "id": self.id,
            "message_id": self.message_id,
            "after_position": self.after_position,
            "code": self.code,
            "message": self.text,
            "detail": self.detail,
            "retryable": self.code in self.RETRYABLE,
            "current": current,
            "created_at": self.created_at.isoformat(),
        }


class PendingApproval(models.Model):
    """A tool call waiting for a user's verdict. Stored so any process (and a restart)
    can see it; ``expires_at`` bounds the wait."""

    VERDICTS = ("allow", "deny", "allow_chat", "expired", "cancelled")

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="approvals")
    tool_call_id = models.CharField(max_length=200)
    tool_name = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    verdict = models.CharField(max_length=12, null=True, blank=True,
                               choices=[(v, v) for v in VERDICTS])
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["chat", "verdict"])]

    def __str__(self) -> str:
        return f"{self.tool_name} {self.tool_call_id}: {self.verdict or 'pending'}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.tool_call_id, "name": self.tool_name, "arguments": self.arguments}


class Compaction(models.Model):
    """One compaction of a chat's context: the summary that replaced older exchanges in
    what the model is sent, and which messages it replaced (they stay, marked
    ``compacted``). The latest one's summary is sent; earlier ones are kept for audit
    (each later summary was written from the one before)."""

    TRIGGERS = ("auto", "manual")

    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="compactions")
    created_at = models.DateTimeField(auto_now_add=True)
    trigger = models.CharField(max_length=6, choices=[(t, t) for t in TRIGGERS])
    model = models.CharField(max_length=200, blank=True, default="")  # who summarised
    summary = models.TextField()
    message_ids = models.JSONField(default=list)  # ids of the messages it replaced
    first_position = models.PositiveIntegerField(null=True, blank=True)
    last_position = models.PositiveIntegerField(null=True, blank=True)
    tokens_before = models.PositiveIntegerField()
    tokens_after = models.PositiveIntegerField()
    turns_removed = models.PositiveIntegerField()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["chat", "-id"])]

    def __str__(self) -> str:
        return f"{self.trigger} compaction of {self.chat_id} ({self.turns_removed} exchanges)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "trigger": self.trigger,
            "model": self.model,
            "summary": self.summary,
            "message_ids": list(self.message_ids),
            "positions": [self.first_position, self.last_position],
            "tokens_before": self.tokens_before,
            "tokens_after": self.tokens_after,
            "turns_removed": self.turns_removed,
        }
