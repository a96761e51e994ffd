"""Sending one delivery to its destination: the request each kind expects, cut to the
kind's length limit with a link back to the chat."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.mail import send_mail

from notifications.models import Delivery, Destination
from notifications.signing import sign
from notifications.targets import check_public_host

# Characters of message text each kind takes (Discord refuses content over 2000; Slack
# advises 4000 for a message's text).
LIMITS = {"discord": 2000, "slack": 4000, "webhook": 60_000, "email": 100_000}


class SendError(Exception):
    """A failed attempt; ``status_code`` is the receiver's answer, if any."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass
class Message:
    title: str
    text: str
    link: str
    payload: dict[str, Any]


def chat_link(chat_id: Any) -> str:
    """Where the dashboard shows the chat ("" when the public URL is not configured)."""
    base = settings.GATEWAY_PUBLIC_URL.rstrip("/")
    return f"{base}/#/chats/{chat_id}" if base and chat_id else ""


def fit(text: str, limit: int, link: str) -> str:
    """``text`` if it fits in ``limit`` characters, else its start and a note saying where
    the whole of it is."""
    if len(text) <= limit:
        return text
    note = f"\n… (cut; the full result: {link})" if link else "\n… (cut)"
    return text[:max(limit - len(note), 0)] + note


def message_of(delivery: Delivery) -> Message:
    return Message(delivery.title, delivery.text, chat_link(delivery.chat_id),
                   dict(delivery.payload))


async def send(destination: Destination, message: Message) -> int | None:
    """Send once; returns the HTTP status (None for e-mail); raises ``SendError``."""
    limit = LIMITS[destination.kind]
    if destination.kind == "email":
        await _send_email(destination.get_target(), message, limit)
        return None
    url = destination.get_target()
    if destination.kind == "discord":
        body = {"content": fit(f"**{message.title}**\n{message.text}", limit, message.link),
                "allowed_mentions": {"parse": []}}  # a result must not ping @everyone
        return await _post(url, _encode(body), {})
    if destination.kind == "slack":
        return await _post(url, _encode({"text": fit(f"*{message.title}*\n{message.text}",
                                                      limit, message.link)}), {})
    raw = _encode({**message.payload, "title": message.title,
                   "text": fit(message.text, limit, message.link), "link": message.link})
    return await _post(url, raw, sign(destination.get_secret(), raw))


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    if not settings.GATEWAY_NOTIFY_UNSAFE_ANY_HOST:
        parts = urlsplit(url)
        # Checked again at send time: the name may resolve elsewhere than when it was saved.
        await sync_to_async(check_public_host)(parts.hostname or "", parts.port or 443)
    try:
        async with httpx.AsyncClient(timeout=settings.GATEWAY_NOTIFY_TIMEOUT,
                                     follow_redirects=False) as client:
            response = await client.post(url, content=body, headers={
                "Content-Type": "application/json", "User-Agent": "agent-gateway", **headers})
    except httpx.HTTPError as exc:
        raise SendError(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise SendError(f"HTTP {response.status_code}", response.status_code)
    return response.status_code


async def _send_email(addresses: str, message: Message, limit: int) -> None:
    text = fit(message.text, limit, message.link)
    if message.link:
        text += f"\n\n{message.link}"
    try:
        await sync_to_async(send_mail)(
            message.title[:150], text, None, [a.strip() for a in addresses.split(",")],
            fail_silently=False)
    except Exception as exc:  # noqa: BLE001 - smtplib and backends raise many kinds
        raise SendError(f"{type(exc).__name__}: {exc}") from None
