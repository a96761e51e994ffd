"""The delivery queue: enqueue, claim (once, across processes), send, retry with backoff.

A delivery is claimed by a conditional UPDATE (pending and due -> sending, with a claim
lease), so two server processes never send the same attempt; a process that dies while
sending leaves a claim that runs out, and the delivery is tried again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from typing import Any, Iterable

from channels.db import database_sync_to_async
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from gateway.errors import GatewayError
from notifications import senders
from notifications.models import Delivery, Destination

logger = logging.getLogger(__name__)
db = database_sync_to_async
CLAIM_SECONDS = 120.0  # longer than one attempt can take (the HTTP timeout is far less)
BATCH = 20


def enqueue(destinations: Iterable[Destination], *, source: str, chat_id: Any, title: str,
            text: str, payload: dict[str, Any] | None = None) -> list[int]:
    """Queue one delivery per enabled destination; the sender loop sends them."""
    now = timezone.now()
    rows = [Delivery(destination=d, source=source, chat_id=chat_id, title=title[:200],
                     text=text, payload=payload or {}, next_attempt_at=now)
            for d in destinations if d.enabled]
    return [row.pk for row in Delivery.objects.bulk_create(rows)] if rows else []


def _due(now: dt.datetime) -> Q:
    return Q(status="pending", next_attempt_at__lte=now) | Q(status="sending",
                                                            claim_until__lt=now)


def claim_due(owner: str, limit: int = BATCH) -> list[int]:
    """Take up to ``limit`` due deliveries for ``owner``; each is taken by one caller."""
    now = timezone.now()
    until = now + dt.timedelta(seconds=CLAIM_SECONDS)
    taken = []
    for pk in Delivery.objects.filter(_due(now)).order_by("next_attempt_at") \
            .values_list("pk", flat=True)[:limit]:
        if Delivery.objects.filter(_due(now), pk=pk).update(
                status="sending", claimed_by=owner, claim_until=until):
            taken.append(pk)
    return taken


def backoff(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling."""
    return settings.GATEWAY_NOTIFY_BACKOFF_SECONDS * 2 ** (attempts - 1)


def record(pk: int, owner: str, status_code: int | None, error: str) -> None:
    """Log one attempt and decide what comes next (only the claim's holder may)."""
    row = Delivery.objects.filter(pk=pk, claimed_by=owner, status="sending").first()
    if row is None:
        return
    now = timezone.now()
    row.attempts += 1
    row.log = [*row.log, {"at": now.isoformat(), "status_code": status_code,
                          "error": error[:500]}]
    if not error:
        row.status, row.delivered_at = "delivered", now
    elif row.attempts >= settings.GATEWAY_NOTIFY_MAX_ATTEMPTS:
        row.status = "failed"
    else:
        row.status = "pending"
        row.next_attempt_at = now + dt.timedelta(seconds=backoff(row.attempts))
    row.claimed_by, row.claim_until = "", None
    row.save(update_fields=["attempts", "log", "status", "delivered_at", "next_attempt_at",
                            "claimed_by", "claim_until"])


def _load(pk: int) -> tuple[Destination, senders.Message]:
    row = Delivery.objects.select_related("destination").get(pk=pk)
    return row.destination, senders.message_of(row)


async def attempt(pk: int, owner: str) -> None:
    """One try at a claimed delivery."""
    destination, message = await db(_load)(pk)
    status_code, error = None, ""
    try:
        status_code = await senders.send(destination, message)
    except senders.SendError as exc:
        status_code, error = exc.status_code, str(exc) or "failed"
    except (GatewayError, ValueError) as exc:  # a refused host; a key that cannot decrypt
        error = str(exc)
    await db(record)(pk, owner, status_code, error)


async def deliver_due(owner: str) -> int:
    """Send what is due now; returns how many attempts were made."""
    pks = await db(claim_due)(owner)
    await asyncio.gather(*(attempt(pk, owner) for pk in pks))
    return len(pks)


async def run_forever() -> None:
    """The sender loop of a ``serve`` process."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    while True:
        try:
            await deliver_due(owner)
        except Exception:  # noqa: BLE001 - the loop must outlive one bad round
            logger.exception("notification round failed")
        await asyncio.sleep(settings.GATEWAY_NOTIFY_POLL_SECONDS)
