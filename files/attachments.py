"""Attachments of a user message: workspace files the message refers to.

A client uploads the files first (``PUT /api/files/content``, by convention under
``uploads/<chat>/``) and sends their paths with the message. Here each path is checked in
the chat owner's workspace (through ``agents.fs``: a regular file beneath the root) and
the message becomes content blocks: the text, then one text block per file telling the
model where it is, and, when the chat's profile declares ``vision``, the image itself as
an ``image_url`` part. The blocks are the stored message, so history and reloads show the
attachments as they were sent.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from django.conf import settings

from agents import fs
from chats.models import Chat
from files import services
from gateway.errors import GatewayError
from profiles.models import ModelProfile

# The image types the OpenAI-style APIs take, by their first bytes.
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def image_type(head: bytes) -> str | None:
    """The MIME type of an image by its first bytes (WebP too), else None."""
    for magic, mime in _IMAGE_MAGIC:
        if head.startswith(magic):
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def with_attachments(chat_id: uuid.UUID, content: str | list[dict[str, Any]],
                     paths: tuple[str, ...]) -> list[dict[str, Any]]:
    """``content`` followed by a block per attachment (and the image for vision)."""
    chat = Chat.objects.select_related("owner", "profile").get(pk=chat_id)
    profile = chat.profile or ModelProfile.get_default()
    vision = bool(profile and profile.vision)
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    with services.open_workspace(chat.owner) as ws:
        for raw in paths:
            blocks += _blocks(ws, raw, vision)
    return blocks


def _blocks(ws: fs.Workspace, raw: str, vision: bool) -> list[dict[str, Any]]:
    try:
        path = fs.clean(raw)
        handle, info = ws.open_read(path)
    except fs.FsError as exc:
        raise GatewayError("invalid_attachment", f"Attachment {raw!r}: {exc.message}",
                           400) from None
    with handle:
        head = handle.read(16)
        mime = image_type(head)
        note = {"type": "text", "text": f"[Attached file: {path} ({info.st_size} bytes"
                                        f"{', ' + mime if mime else ''}), in the workspace; "
                                        "read it with your tools.]"}
        if not (vision and mime and info.st_size <= settings.GATEWAY_ATTACH_IMAGE_MAX_BYTES):
            return [note]
        data = head + handle.read(info.st_size)  # bounded by the limit just checked
    url = f"data:{mime};base64,{base64.b64encode(data[:info.st_size]).decode('ascii')}"
    return [note, {"type": "image_url", "image_url": {"url": url}}]
