"""Database work of turns, in small sync functions (call them through
``database_sync_to_async``). Nothing here runs per delta."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from agents.compaction import summary_message
from agents.providers import ProviderConfig
from agents.sandbox import SandboxPolicy
from chats.models import Chat, Compaction, Message, PendingApproval
from permissions.models import PermissionPolicy, SandboxConfig
from profiles.models import ModelProfile
from gateway.limits import encodable

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,149}$")


def workspace_for(user: Any) -> Path:
    """``GATEWAY_WORKSPACE/<username>/``; a username that is not a safe folder name
    gets ``user-<id>`` instead."""
    name = user.username if _SAFE_NAME.match(user.username or "") else f"user-{user.pk}"
    return Path(settings.GATEWAY_WORKSPACE) / name


# --- the queue and the lock ---------------------------------------------------------

@transaction.atomic
def enqueue_and_start(chat_id: uuid.UUID, content: Any, stream: bool, owner: str | None,
                      lease: float) -> tuple[int, int, "TurnSetup | None"]:
    """Store a user message as queued; if ``owner`` is given and the chat is idle, also
    take its turn lock and start the oldest queued message. Returns the message id, its
    place in the queue (1 = next) and the started turn's setup, if any."""
    msg = Message.objects.create(chat_id=chat_id, role="user", content=content,
                                 status="queued", stream=stream)
    Chat.objects.filter(pk=chat_id).update(updated_at=timezone.now())
    queued = Message.objects.filter(chat_id=chat_id, status="queued").count()
    setup = None
    if owner is not None and try_acquire(chat_id, owner, lease):
        setup = start_next(chat_id)
    return msg.id, queued, setup


def has_queued(chat_id: uuid.UUID) -> bool:
    return Message.objects.filter(chat_id=chat_id, status="queued").exists()


def try_acquire(chat_id: uuid.UUID, owner: str, lease: float) -> bool:
    """Take the chat's turn lock if it is free. A lock whose lease ran out (its process
    died) is not taken here: ``settle_dead_turn`` repairs the chat and frees it first."""
    until = timezone.now() + dt.timedelta(seconds=lease)
    return bool(Chat.objects.filter(pk=chat_id, turn_owner__isnull=True)
                .update(turn_owner=owner, turn_lease_until=until))


def orphan_queues() -> list[uuid.UUID]:
    """Chats with queued messages and no turn running (their process died before it
    started one)."""
    return list(Chat.objects.filter(turn_owner__isnull=True, messages__status="queued")
                .values_list("pk", flat=True).distinct())


def renew(chat_id: uuid.UUID, owner: str, lease: float, last_seq: int) -> bool:
    """Extend the lease; also saves how far seq got, so a crash loses little of it."""
    until = timezone.now() + dt.timedelta(seconds=lease)
    return bool(Chat.objects.filter(pk=chat_id, turn_owner=owner)
                .update(turn_lease_until=until, last_seq=last_seq))


def release(chat_id: uuid.UUID, owner: str, last_seq: int) -> None:
    Chat.objects.filter(pk=chat_id, turn_owner=owner).update(
        turn_owner=None, turn_lease_until=None, last_seq=last_seq)


def save_last_seq(chat_id: uuid.UUID, last_seq: int) -> None:
    Chat.objects.filter(pk=chat_id, last_seq__lt=last_seq).update(last_seq=last_seq)


def chat_last_seq(chat_id: uuid.UUID) -> int:
    return Chat.objects.filter(pk=chat_id).values_list("last_seq", flat=True).first() or 0


def running_count() -> int:
    return Chat.objects.filter(turn_owner__isnull=False,
                               turn_lease_until__gte=timezone.now()).count()


# --- one turn -----------------------------------------------------------------------

@dataclass
class TurnSetup:
    """Everything a turn needs, read in one go when it starts."""

    message_id: int
    stream: bool
    owner_id: int
    workspace: Path
    provider: ProviderConfig | None
    history: list[dict[str, Any]]
    mode: str
    overrides: dict[str, str]
    allowed_tools: set[str]
    sandbox: SandboxPolicy
    next_position: int
    extra: dict[str, Any] = field(default_factory=dict)


def _next_position(chat_id: uuid.UUID) -> int:
    top = Message.objects.filter(chat_id=chat_id).aggregate(top=Max("position"))["top"]
    return 0 if top is None else top + 1


def history_for_model(chat_id: uuid.UUID) -> list[dict[str, Any]]:
    """The conversation as the model is sent it after the system prompt: the summary of
    the latest compaction (if any), then every message it did not replace."""
    rows = Message.objects.filter(chat_id=chat_id, compacted=False, position__isnull=False) \
        .exclude(role="system").order_by("position")
    latest = Compaction.objects.filter(chat_id=chat_id).order_by("-id").first()
    head = [summary_message(latest.summary)] if latest else []
    # encodable: text stored before input was checked may hold lone surrogates, which
    # no request to the model can carry; they go as U+FFFD and the chat keeps working.
    return encodable([*head, *(row.to_openai() for row in rows)])


def provider_config(profile: ModelProfile | None, *, with_key: bool = True
                    ) -> ProviderConfig | None:
    """What the agent loop needs of a profile, with the key decrypted (``with_key``; the
    token counting of context reports needs only the model and its window)."""
    if profile is None:
        return None
    return ProviderConfig(name=profile.name, provider=profile.provider, model=profile.model,
                          base_url=profile.base_url,
                          api_key=profile.get_api_key() if with_key else "",
                          context_window=profile.context_window,
                          max_output_tokens=profile.max_output_tokens)


def sandbox_policy() -> SandboxPolicy:
    config = SandboxConfig.load()
    return SandboxPolicy(**config.to_dict())


@transaction.atomic
def start_next(chat_id: uuid.UUID) -> TurnSetup | None:
    """Take the oldest queued message into the conversation and read the turn's setup;
    None when the queue is empty."""
    msg = Message.objects.filter(chat_id=chat_id, status="queued").order_by("id").first()
    if msg is None:
        return None
    chat = Chat.objects.select_related("profile", "owner").get(pk=chat_id)
    msg.position = _next_position(chat_id)
    msg.status = "done"
    msg.save(update_fields=["position", "status"])
    profile = chat.profile or ModelProfile.get_default()
    policy = PermissionPolicy.load()
    return TurnSetup(
        message_id=msg.id, stream=msg.stream, owner_id=chat.owner_id,
        workspace=workspace_for(chat.owner),
        provider=provider_config(profile),
        history=history_for_model(chat_id), mode=policy.mode,
        overrides=dict(policy.tool_overrides), allowed_tools=set(chat.allowed_tools),
        sandbox=sandbox_policy(), next_position=msg.position + 1,
    )


def current_policy() -> tuple[str, dict[str, str]]:
    """The permission policy as it is now: changes apply to the next tool round."""
    policy = PermissionPolicy.load()
    return policy.mode, dict(policy.tool_overrides)


class MessageWriter:
    """Appends the turn's messages; positions are counted here because only the holder
    of the chat's turn lock writes to its conversation."""

    def __init__(self, chat_id: uuid.UUID, next_position: int) -> None:
        self.chat_id = chat_id
        self.next_position = next_position

    def add(self, **fields: Any) -> int:
        msg = Message.objects.create(chat_id=self.chat_id, position=self.next_position,
                                     **fields)
        self.next_position += 1
        return msg.id


def allow_tool_for_chat(chat_id: uuid.UUID, tool_name: str) -> None:
    with transaction.atomic():
        chat = Chat.objects.select_for_update().get(pk=chat_id)
        if tool_name not in chat.allowed_tools:
            chat.allowed_tools = [*chat.allowed_tools, tool_name]
            chat.save(update_fields=["allowed_tools"])


# --- approvals ----------------------------------------------------------------------

def create_approvals(chat_id: uuid.UUID, calls: list[dict[str, Any]], timeout: float) -> None:
    expires = timezone.now() + dt.timedelta(seconds=timeout)
    PendingApproval.objects.bulk_create([
        PendingApproval(chat_id=chat_id, tool_call_id=c["id"], tool_name=c["name"],
                        arguments=c["arguments"], expires_at=expires) for c in calls])


def resolve_approvals(chat_id: uuid.UUID, verdicts: dict[str, str]) -> None:
    now = timezone.now()
    for call_id, verdict in verdicts.items():
        PendingApproval.objects.filter(chat_id=chat_id, tool_call_id=call_id,
                                       verdict__isnull=True).update(verdict=verdict,
                                                                    resolved_at=now)


def pending_approvals(chat_id: uuid.UUID) -> list[dict[str, Any]]:
    return [p.to_dict() for p in PendingApproval.objects.filter(chat_id=chat_id,
                                                                verdict__isnull=True)]


def snapshot(chat_id: uuid.UUID) -> dict[str, Any]:
    """The parts of ``agent.state`` the database knows."""
    chat = Chat.objects.filter(pk=chat_id).values("turn_owner", "turn_lease_until").first()
    running = bool(chat and chat["turn_owner"] and chat["turn_lease_until"]
                   and chat["turn_lease_until"] >= timezone.now())
    return {
        "running": running,
        "queued": Message.objects.filter(chat_id=chat_id, status="queued").count(),
        "pending_tool_calls": pending_approvals(chat_id) if running else [],
    }


# --- recovery -----------------------------------------------------------------------

# Larger than the events a turn can stream between two heartbeats.
SEQ_JUMP_AFTER_CRASH = 1_000_000


def stale_chats(force: bool) -> list[uuid.UUID]:
    """Chats whose turn holder is gone: lease ran out, or (``force``, one process
    starting) any holder at all."""
    rows = Chat.objects.filter(turn_owner__isnull=False)
    if not force:
        rows = rows.filter(turn_lease_until__lt=timezone.now())
    return list(rows.values_list("pk", flat=True))


@transaction.atomic
def settle_dead_turn(chat_id: uuid.UUID, force: bool) -> bool:
    """Make a chat whose turn died consistent and release its lock. Returns False when
    a live holder took the chat meanwhile."""
    chat = Chat.objects.select_for_update().filter(pk=chat_id).first()
    if chat is None or chat.turn_owner is None:
        return False
    if not force and chat.turn_lease_until and chat.turn_lease_until >= timezone.now():
        return False
    writer = MessageWriter(chat_id, _next_position(chat_id))
    answered = set(Message.objects.filter(chat_id=chat_id, role="tool")
                   .values_list("tool_call_id", flat=True))
    last_user = Message.objects.filter(chat_id=chat_id, role="user", status="done") \
        .order_by("-position").first()
    since = last_user.position if last_user else -1
    for msg in Message.objects.filter(chat_id=chat_id, role="assistant",
                                      position__gt=since).exclude(tool_calls=None):
        for call in msg.tool_calls or []:
            if call["id"] not in answered:
                writer.add(role="tool", tool_call_id=call["id"],
                           tool_name=call["function"]["name"], is_error=True,
                           content="Interrupted: the server stopped before this call "
                                   "finished.", status="interrupted")
    writer.add(role="assistant", content="[The turn was interrupted: the server running it "
               "stopped.]", status="interrupted")
    # Events after the last saved seq died with the process, and clients may have seen
    # them: jump past anything they could hold, so new events are never taken for old
    # ones (a client asking ?since= for the lost range is told replay_complete=false).
    Chat.objects.filter(pk=chat_id).update(last_seq=chat.last_seq + SEQ_JUMP_AFTER_CRASH)
    PendingApproval.objects.filter(chat_id=chat_id, verdict__isnull=True).update(
        verdict="expired", resolved_at=timezone.now())
    Chat.objects.filter(pk=chat_id).update(turn_owner=None, turn_lease_until=None)
    return True
