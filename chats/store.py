"""Database work of turns, in small sync functions (call them through
``database_sync_to_async``). Nothing here runs per delta."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from access.services import default_for
from agents.compaction import summary_message
from agents.mcp import ServerConfig
from agents.providers import ProviderConfig
from agents.sandbox import SandboxPolicy
from chats import config, hotsql, titles
from chats.models import Chat, Compaction, Message, PendingApproval
from profiles.models import ModelProfile
from gateway.auth import Unauthorized, lookup_token
from gateway.errors import GatewayError
from gateway.limits import encodable
from usage import turns as usage_turns

# How workspaces were named before they were named by id; only to find and move them.
_LEGACY_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,149}$")
_LEGACY_FALLBACK = re.compile(r"^user-([0-9]+)$")

log = logging.getLogger(__name__)


def workspace_for(user: Any) -> Path:
    """``GATEWAY_WORKSPACE/@<user id>/``, created 0700 (the root too) on first use.

    Named by the immutable id, never by a name two users could share. The ``@`` keeps
    these names apart from the folders of before (named by username, or ``user-<id>``
    when the username was no safe folder name; none could start with ``@``), so a
    username made of digits can never land in another user's folder. A folder of before
    is moved here on its owner's first use, unless two users could claim it (see
    ``_adopt_legacy``)."""
    root = Path(settings.GATEWAY_WORKSPACE)
    path = root / f"@{user.pk}"
    if not path.is_dir():
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _adopt_legacy(root, user, path)
        path.mkdir(mode=0o700, exist_ok=True)
    return path


def _legacy_name(user: Any) -> str:
    return user.username if _LEGACY_SAFE_NAME.match(user.username or "") else f"user-{user.pk}"


def _legacy_claimants(name: str) -> int:
    """How many users the old naming sent to folder ``name`` (two: ``user-4`` and user 4
    whose name was no safe folder name)."""
    users = get_user_model().objects
    count = users.filter(username=name).count()
    match = _LEGACY_FALLBACK.match(name)
    if match:
        owner = users.filter(pk=int(match.group(1))).first()
        count += owner is not None and _legacy_name(owner) == name
    return count


def _adopt_legacy(root: Path, user: Any, path: Path) -> None:
    """Move the user's folder of before (a real directory, not a link) to ``path``. A
    folder two users shared stays where it is, for the operator to sort out: moving it
    would hand one user the other's files."""
    legacy = root / _legacy_name(user)
    if not legacy.is_dir() or legacy.is_symlink():
        return
    if _legacy_claimants(legacy.name) > 1:
        log.warning("workspace %s was shared by two users; not moved to %s", legacy, path)
        return
    with contextlib.suppress(OSError):  # gone or filled meanwhile (another process won)
        os.rename(legacy, path)
        log.info("moved workspace %s to %s", legacy, path)


# --- the queue and the lock ---------------------------------------------------------

@transaction.atomic
def enqueue_and_start(chat_id: uuid.UUID, content: Any, stream: bool, owner: str | None,
                      lease: float) -> tuple[int, int, "TurnSetup | None"]:
    """Store a user message as queued; if ``owner`` is given and the chat is idle, also
    take its turn lock and start the oldest queued message. Returns the message id, its
    place in the queue (1 = next) and the started turn's setup, if any."""
    # The chat's row first (last activity; an untitled chat is titled from its first
    # message at once): its row lock orders this against ``release``. A turn that ends
    # meanwhile either waits for this commit, and its last look for queued messages
    # (``release`` looks at the queue) sees the message, or has released already, and
    # ``try_acquire`` below finds the chat free. Never a message left waiting.
    # (chats.hotsql: the statements of every turn, as plain SQL.)
    hotsql.touch_chat(chat_id, titles.title_from(content))
    message_id = hotsql.insert_message(chat_id, role="user", content=content,
                                       status="queued", stream=stream)
    setup = None
    if owner is not None and try_acquire(chat_id, owner, lease):
        setup = _take_next(chat_id)
    if setup is not None and setup.message_id == message_id:
        return message_id, 1, setup  # it was the oldest waiting, and it runs now
    return message_id, Message.objects.filter(chat_id=chat_id, status="queued").count(), setup


def enqueue_checked(token: str, chat_id: uuid.UUID, content: Any, stream: bool,
                    owner: str | None, lease: float) -> tuple[int, int, "TurnSetup | None"]:
    """``enqueue_and_start`` for a socket's frame, its token checked first in the same
    database call (outside the transaction: knox deletes an expired token, which must
    stay deleted). Raises ``Unauthorized``, storing nothing, when it is no longer valid."""
    if lookup_token(token) is None:
        raise Unauthorized
    return enqueue_and_start(chat_id, content, stream, owner, lease)


def has_queued(chat_id: uuid.UUID) -> bool:
    return Message.objects.filter(chat_id=chat_id, status="queued").exists()


def try_acquire(chat_id: uuid.UUID, owner: str, lease: float) -> bool:
    """Take the chat's turn lock if it is free. A lock whose lease ran out (its process
    died) is not taken here: ``settle_dead_turn`` repairs the chat and frees it first."""
    return hotsql.try_acquire(chat_id, owner, timezone.now() + dt.timedelta(seconds=lease))


def orphan_queues() -> list[uuid.UUID]:
    """Chats with queued messages and no turn running (their process died before it
    started one)."""
    return list(Chat.objects.filter(turn_owner__isnull=True, messages__status="queued")
                .values_list("pk", flat=True).distinct())


def renew_lease(chat_id: uuid.UUID, owner: str, lease: float) -> bool:
    """Extend the lease if the lock is still ``owner``'s."""
    until = timezone.now() + dt.timedelta(seconds=lease)
    return bool(Chat.objects.filter(pk=chat_id, turn_owner=owner)
                .update(turn_lease_until=until))


def renew(chat_id: uuid.UUID, owner: str, lease: float, last_seq: int) -> bool:
    """Extend the lease; also saves how far seq got, so a crash loses little of it."""
    until = timezone.now() + dt.timedelta(seconds=lease)
    return bool(Chat.objects.filter(pk=chat_id, turn_owner=owner)
                .update(turn_lease_until=until, last_seq=last_seq))


@transaction.atomic
def release(chat_id: uuid.UUID, owner: str, last_seq: int) -> bool:
    """Give the chat's lock back; True when messages wait in its queue (stored after the
    holder's last look: ``enqueue_and_start`` locks the chat's row first, so it either
    committed before this, and is seen here, or comes after and finds the chat free)."""
    Chat.objects.filter(pk=chat_id, turn_owner=owner).update(
        turn_owner=None, turn_lease_until=None, last_seq=last_seq)
    return has_queued(chat_id)


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
    owner_name: str
    workspace: Path
    provider: ProviderConfig | None
    history: list[dict[str, Any]]
    mode: str
    overrides: dict[str, str]
    allowed_tools: set[str]
    sandbox: SandboxPolicy
    next_position: int
    mcp_servers: tuple[ServerConfig, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # The admission (model access, budgets), done in the same database call: the turn's
    # budget charge, or why the turn may not call the model.
    charge_id: int | None = None
    refusal: GatewayError | None = None
    # Whether the model titles the chat after this turn's reply (its first reply, an
    # untitled chat, a profile with ``auto_title``): no look at the database otherwise.
    wants_title: bool = False


def _next_position(chat_id: uuid.UUID) -> int:
    top = Message.objects.filter(chat_id=chat_id).aggregate(top=Max("position"))["top"]
    return 0 if top is None else top + 1


def history_for_model(chat_id: uuid.UUID) -> list[dict[str, Any]]:
    """The conversation as the model is sent it after the system prompt: the summary of
    the latest compaction (if any), then every message it did not replace."""
    summary = Compaction.objects.filter(chat_id=chat_id).order_by("-id") \
        .values_list("summary", flat=True).first()
    return _history(summary, chat_id)


def _history(summary: str | None, chat_id: uuid.UUID) -> list[dict[str, Any]]:
    head = [summary_message(summary)] if summary is not None else []
    # encodable: text stored before input was checked may hold lone surrogates, which
    # no request to the model can carry; they go as U+FFFD and the chat keeps working.
    return encodable([*head, *hotsql.conversation(chat_id)])


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
    """The sandbox config in force (the process's cached copy, see ``chats.config``)."""
    return config.current().sandbox


@transaction.atomic
def start_next(chat_id: uuid.UUID, owner: str, lease: float) -> TurnSetup | None:
    """Take the oldest queued message into the conversation and read the turn's setup;
    None when the queue is empty or the chat's lock is no longer ``owner``'s (its lease
    ran out and another process settled the chat: that one runs the queue now, so two
    turns never run at once). Taking a message renews the lease."""
    if not renew_lease(chat_id, owner, lease):
        return None
    return _take_next(chat_id)


@transaction.atomic
def next_or_release(chat_id: uuid.UUID, owner: str, lease: float, last_seq: int
                    ) -> TurnSetup | None:
    """The end of a turn, in one database call: ``start_next``, or when the queue is
    empty, ``release`` (None either way when the lock is no longer ``owner``'s). The
    chat's row is locked first (the lease renewed, with how far seq got), so a message
    stored meanwhile (``enqueue_and_start`` locks the row first too) is either seen
    here and started, or stored after the release and started by its sender."""
    until = timezone.now() + dt.timedelta(seconds=lease)
    if not hotsql.renew(chat_id, owner, until, last_seq):
        return None
    setup = _take_next(chat_id)
    if setup is None:
        hotsql.give_back(chat_id, owner)
    return setup


def _take_next(chat_id: uuid.UUID) -> TurnSetup | None:
    """``start_next``'s work, inside the caller's transaction, the lock held. Profiles,
    policy, sandbox and MCP servers come from the process's cached configuration
    (``chats.config``), not from their tables; the owner's row is read only when a grant
    or a budget applies, or no default profile does."""
    nxt = hotsql.next_turn(chat_id)
    if nxt is None or nxt.message_id is None:
        return None
    hotsql.take_message(nxt.message_id, nxt.next_position)
    users = get_user_model()
    owner = None  # the owner's row, read when needed

    def full_owner() -> Any:
        nonlocal owner
        if owner is None:
            owner = users.objects.get(pk=nxt.owner_id)
        return owner

    snapshot = config.current()
    profile_id = nxt.profile_id
    if profile_id is None:  # the default, or the first profile the owner may use
        profile_id = snapshot.default_profile_id
        if profile_id is None or profile_id in snapshot.granted_profiles:
            default = default_for(full_owner())
            profile_id = default.pk if default else None
    provider = snapshot.provider(profile_id) if profile_id is not None else None
    charge_id, refusal, wants_title = None, None, False
    history = _history(nxt.summary, chat_id)
    if provider is not None:  # model access and budgets, before any upstream call
        used = profile_id if profile_id in snapshot.profiles else snapshot.default_profile_id
        wants_title = nxt.title_auto and len(history) == 1 and used in snapshot.auto_title
        granted, budgets = used in snapshot.granted_profiles, snapshot.budgets_exist
        if granted or budgets:
            try:
                charge_id = usage_turns.admit_starting(
                    full_owner(), str(chat_id), used, granted=granted, budgets=budgets)
            except GatewayError as exc:
                refusal = exc
    # workspace_for needs the id (and, to move a folder of before, the name) only.
    workspace = workspace_for(owner or users(pk=nxt.owner_id,
                                             **{users.USERNAME_FIELD: nxt.username}))
    return TurnSetup(
        message_id=nxt.message_id, stream=nxt.stream, owner_id=nxt.owner_id,
        owner_name=nxt.username, workspace=workspace,
        provider=provider, history=history, mode=snapshot.mode,
        overrides=dict(snapshot.overrides), allowed_tools=set(nxt.allowed_tools),
        sandbox=snapshot.sandbox, next_position=nxt.next_position + 1,
        mcp_servers=snapshot.mcp_servers, charge_id=charge_id, refusal=refusal,
        wants_title=wants_title,
    )


def current_policy() -> tuple[str, dict[str, str]]:
    """The permission policy as it is now: changes apply to the next tool round."""
    snapshot = config.current()
    return snapshot.mode, dict(snapshot.overrides)


class MessageWriter:
    """Appends the turn's messages; positions are counted here because only the holder
    of the chat's turn lock writes to its conversation."""

    def __init__(self, chat_id: uuid.UUID, next_position: int) -> None:
        self.chat_id = chat_id
        self.next_position = next_position

    def add(self, **fields: Any) -> int:
        message_id = hotsql.insert_message(self.chat_id, position=self.next_position,
                                           **fields)
        self.next_position += 1
        return message_id


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
    return socket_state(chat_id)[0]


def socket_state(chat_id: uuid.UUID) -> tuple[dict[str, Any], int]:
    """``snapshot``, and the last seq saved for the chat (where a process that has not
    seen it yet starts numbering its events)."""
    chat = Chat.objects.filter(pk=chat_id).values(
        "turn_owner", "turn_lease_until", "last_seq").first()
    running = bool(chat and chat["turn_owner"] and chat["turn_lease_until"]
                   and chat["turn_lease_until"] >= timezone.now())
    return {
        "running": running,
        "queued": Message.objects.filter(chat_id=chat_id, status="queued").count(),
        "pending_tool_calls": pending_approvals(chat_id) if running else [],
    }, (chat["last_seq"] if chat else 0) or 0


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


def _turn_open(chat_id: uuid.UUID) -> bool:
    """Whether the conversation ends inside a turn (False when its last turn ended with
    the answer)."""
    last = Message.objects.filter(chat_id=chat_id, position__isnull=False) \
        .order_by("-position").first()
    return last is not None and not (last.role == "assistant" and not last.tool_calls)


def _close_history(chat_id: uuid.UUID, why: str) -> None:
    """Answer every tool call of the last turn that has no result and add an
    interrupted assistant note, so the conversation is valid for the model again."""
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
                           content=f"Interrupted: {why} before this call finished.",
                           status="interrupted")
    writer.add(role="assistant", content=f"[The turn was interrupted: {why}.]",
               status="interrupted")


@transaction.atomic
def settle_failed_turn(chat_id: uuid.UUID, owner: str) -> bool:
    """After this process's turn failed (Redis or the database went away under it):
    close the conversation if the turn left it open. False when the lock is no longer
    ours (the sweeper of another process settled it) or nothing was open."""
    chat = Chat.objects.select_for_update().filter(pk=chat_id, turn_owner=owner).first()
    if chat is None:
        return False
    if not _turn_open(chat_id):
        return False
    _close_history(chat_id, "the database or Redis failed during the turn")
    PendingApproval.objects.filter(chat_id=chat_id, verdict__isnull=True).update(
        verdict="expired", resolved_at=timezone.now())
    return True


@transaction.atomic
def settle_dead_turn(chat_id: uuid.UUID, force: bool) -> str | None:
    """Make a chat whose turn died consistent and release its lock: "interrupted" when a
    turn was open and got closed, "idle" when its holder died between two turns (nothing
    to close, no note written), None when a live holder took the chat meanwhile."""
    chat = Chat.objects.select_for_update().filter(pk=chat_id).first()
    if chat is None or chat.turn_owner is None:
        return None
    if not force and chat.turn_lease_until and chat.turn_lease_until >= timezone.now():
        return None
    outcome = "interrupted" if _turn_open(chat_id) else "idle"
    if outcome == "interrupted":
        _close_history(chat_id, "the server running it stopped")
    # Events after the last saved seq died with the process, and clients may have seen
    # them: jump past anything they could hold, so new events are never taken for old
    # ones (a client asking ?since= for the lost range is told replay_complete=false).
    Chat.objects.filter(pk=chat_id).update(last_seq=chat.last_seq + SEQ_JUMP_AFTER_CRASH)
    PendingApproval.objects.filter(chat_id=chat_id, verdict__isnull=True).update(
        verdict="expired", resolved_at=timezone.now())
    Chat.objects.filter(pk=chat_id).update(turn_owner=None, turn_lease_until=None)
    return outcome
