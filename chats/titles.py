"""Chat titles written by the server: from the first message at once, and a short one
the model writes after the first reply when the chat's profile allows it (``auto_title``,
see ``chats.history``). A title a person set (``title_auto`` false) is never replaced.

Pure helpers: the turn's store and history modules import this one."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Case, F, Value, When

MAX_TITLE = 60
TITLE_PROMPT = ("Write a title of at most six words for the conversation below. Answer "
                "with the title only: no quotes, no final period.")


def text_of(content: Any) -> str:
    """The plain text of message content (a string, or content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def title_from(content: Any) -> str:
    """A title from a first message: its first line, shortened at a word."""
    lines = [line for line in text_of(content).splitlines() if line.strip()]
    line = " ".join(lines[0].split()) if lines else ""
    if len(line) <= MAX_TITLE:
        return line
    cut = line[:MAX_TITLE - 1].rsplit(" ", 1)[0] or line[:MAX_TITLE - 1]
    return cut + "…"


def untitled_set(content: Any) -> dict[str, Any]:
    """UPDATE arguments that title an untitled chat from ``content`` (and leave any
    other title alone), for the statement that records a new message anyway."""
    title = title_from(content)
    if not title:
        return {}
    untitled = When(title="", then=Value(True))
    return {"title": Case(When(title="", then=Value(title)), default=F("title")),
            "title_auto": Case(untitled, default=F("title_auto"))}


def clean(reply: str) -> str:
    """A model's title answer as a title: one line, no quotes or trailing period."""
    line = reply.strip().splitlines()[0] if reply.strip() else ""
    return title_from(re.sub(r'^[\s"\'#*]+|[\s"\'.*]+$', "", line))
