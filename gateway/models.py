"""API tokens: hashed at rest by django-rest-knox, named, revocable, optional expiry."""

from __future__ import annotations

from django.db import models
from knox.models import AbstractAuthToken


class ApiToken(AbstractAuthToken):
    """A bearer token of a user. Only the SHA-512 digest and the first 15 characters
    (``token_key``, used to find candidates and to show the user which token is which)
    are stored; the token itself is shown once, when it is created."""

    name = models.CharField(max_length=100, default="default")

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.user} / {self.name} ({self.token_key}...)"

    def to_dict(self) -> dict:
        return {
            "id": self.token_key,
            "name": self.name,
            "prefix": self.token_key,
            "created": self.created.isoformat(),
            "expiry": self.expiry.isoformat() if self.expiry else None,
        }
