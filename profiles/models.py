"""Model profiles: which provider, model and endpoint a chat talks to."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction

from profiles import crypto

# Every provider is reached through an OpenAI-compatible endpoint (the agent's
# ``agents.providers`` knows their default URLs; a test keeps the two lists equal).
PROVIDERS = ("openai", "ollama", "anthropic")


class ModelProfile(models.Model):
    name = models.SlugField(max_length=64, unique=True)
    provider = models.CharField(max_length=16, choices=[(p, p) for p in PROVIDERS])
    model = models.CharField(max_length=200)
    base_url = models.URLField(max_length=500, blank=True, default="")
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    api_key_last4 = models.CharField(max_length=4, blank=True, default="", editable=False)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    # The model accepts images: attached images are sent as image parts, not only paths.
    vision = models.BooleanField(default=False)
    is_default = models.BooleanField(default=False)
    # Ask the model for a short chat title after a chat's first reply (one extra, small
    # model call per chat, so an admin opts in per profile).
    auto_title = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=models.Q(is_default=True),
                                    name="one_default_profile"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider}:{self.model})"

    def set_api_key(self, key: str | None) -> None:
        """Store a key encrypted; None or "" clears it."""
        if key:
            self.api_key_encrypted = crypto.encrypt(key)
            self.api_key_last4 = key[-4:]
        else:
            self.api_key_encrypted = ""
            self.api_key_last4 = ""

    def get_api_key(self) -> str:
        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    @property
    def masked_api_key(self) -> str | None:
        return f"...{self.api_key_last4}" if self.api_key_encrypted else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "base_url": self.base_url or None,
            "api_key": self.masked_api_key,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            "vision": self.vision,
            "auto_title": self.auto_title,
        }

    @classmethod
    def get_default(cls) -> "ModelProfile | None":
        return cls.objects.filter(is_default=True).first()

    @transaction.atomic
    def make_default(self) -> None:
        ModelProfile.objects.filter(is_default=True).exclude(pk=self.pk).update(is_default=False)
        self.is_default = True
        self.save(update_fields=["is_default", "updated_at"])
