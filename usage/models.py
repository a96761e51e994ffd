"""The usage ledger, per-profile prices, budgets, and the charges of running turns.

Every model call is one ``UsageRecord``. A turn of a user with a budget holds a
``TurnCharge`` from its admission to its end: the calls add to it, and while it is open
it counts against the budget with the size of the user's largest recent turn, so turns
started at the same moment (on any process) cannot all slip under one limit.
"""

from __future__ import annotations

import decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models

from profiles.models import ModelProfile

PERIODS = ("day", "month")
# What a model call was for: a turn's own call, the summary of a compaction (made in a
# turn, or asked for with POST /api/chats/<id>/compact), or the short title the model
# writes after a chat's first reply.
PURPOSES = ("turn", "compaction", "title")
MONEY = {"max_digits": 14, "decimal_places": 6}


def money(value: decimal.Decimal | None) -> str | None:
    """Decimals go out as strings: a float would round a cost."""
    return None if value is None else format(value.normalize(), "f")


class ProfilePrice(models.Model):
    """What a profile's calls cost, per million input and output tokens (admins set it;
    a profile without a price is counted in tokens only)."""

    profile = models.OneToOneField(ModelProfile, on_delete=models.CASCADE, related_name="price")
    input_per_million = models.DecimalField(**MONEY)
    output_per_million = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=8, default="USD")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.profile.name}: {self.input_per_million}/{self.output_per_million}"

    def cost(self, input_tokens: int, output_tokens: int) -> decimal.Decimal:
        total = (self.input_per_million * input_tokens
                 + self.output_per_million * output_tokens) / 1_000_000
        return total.quantize(decimal.Decimal("0.000001"))

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile.name, "currency": self.currency,
                "input_per_million": money(self.input_per_million),
                "output_per_million": money(self.output_per_million)}


class UsageRecord(models.Model):
    """One model call (``purpose``: a turn's, a compaction's summary, or a chat's
    title). Kept when the chat or the profile goes (names are copied)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                             related_name="usage_records")
    username = models.CharField(max_length=150)
    chat_id = models.UUIDField(null=True, db_index=True)
    profile_name = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    input_tokens = models.PositiveIntegerField()
    output_tokens = models.PositiveIntegerField()
    duration_ms = models.PositiveIntegerField()
    cost = models.DecimalField(null=True, **MONEY)
    purpose = models.CharField(max_length=16, choices=[(p, p) for p in PURPOSES],
                               default="turn")
    charge = models.ForeignKey("TurnCharge", null=True, on_delete=models.SET_NULL,
                               related_name="records")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self) -> str:
        return f"{self.username} {self.model} {self.input_tokens}+{self.output_tokens}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.username,
                "chat_id": str(self.chat_id) if self.chat_id else None,
                "profile": self.profile_name, "model": self.model,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "duration_ms": self.duration_ms, "cost": money(self.cost),
                "purpose": self.purpose, "created_at": self.created_at.isoformat()}


class Budget(models.Model):
    """A daily or monthly limit in tokens and/or cost, for one user or one group (a
    group's limit is for all its members together)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.CASCADE, related_name="budgets")
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE,
                              related_name="budgets")
    period = models.CharField(max_length=5, choices=[(p, p) for p in PERIODS])
    limit_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    limit_cost = models.DecimalField(null=True, blank=True, **MONEY)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(user__isnull=False, group__isnull=True)
                           | models.Q(user__isnull=True, group__isnull=False)),
                name="budget_for_user_or_group"),
            models.CheckConstraint(
                condition=models.Q(limit_tokens__isnull=False)
                | models.Q(limit_cost__isnull=False),
                name="budget_has_a_limit"),
            models.UniqueConstraint(fields=["user", "period"], name="one_budget_per_user_period"),
            models.UniqueConstraint(fields=["group", "period"],
                                    name="one_budget_per_group_period"),
        ]

    def __str__(self) -> str:
        return f"{self.period} budget of {self.subject()}"

    def subject(self) -> str:
        return f"user {self.user}" if self.user_id else f"group {self.group}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id,
                "user": self.user.get_username() if self.user_id else None,
                "group": self.group.name if self.group_id else None,
                "period": self.period, "limit_tokens": self.limit_tokens,
                "limit_cost": money(self.limit_cost)}


class TurnCharge(models.Model):
    """A turn of a budgeted user, from admission to end (``closed_at``)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="turn_charges")
    chat_id = models.UUIDField(null=True)
    tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(default=0, **MONEY)
    opened_at = models.DateTimeField(auto_now_add=True)
    # A charge whose process died never closes: it stops counting at ``expires_at``.
    expires_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "closed_at"])]
