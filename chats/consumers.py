"""The WebSocket endpoint ``/ws/{chat_id}?token=...``: it only translates.

Connect: authenticate (close 4001), check ownership (close 4004), subscribe to the chat's
events in this process's event hub, send ``agent.state`` and, with ``?since=<seq>``, the
retained events after that seq; then every event of the chat, in seq order, each once.
Receive: check that the token is still valid (else close 4001: nothing a revoked socket
sends acts, an approval least of all), parse the frame and hand it to the turn manager.
A revoked token or user, or an expired token, closes the socket with 4001
(``gateway.revocation``).

The socket uses no channel layer: its events come from the event hub by a direct call,
revocations from ``gateway.revocation``, so a socket costs no channel, receive loop or
group membership (four Redis calls a socket with several processes).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.consumer import get_handler_name
from django.conf import settings
from django.utils import timezone

from agents import events as ev
from audit.services import note_verdicts
from chats import frames, store
from chats.access import chat_id_for
from chats.hub import encode
from chats.turns import get_manager
from files.attachments import with_attachments
from gateway import revocation
from gateway.auth import CLOSE_UNAUTHORIZED, Unauthorized, lookup_token, socket_token
from gateway.errors import GatewayError
from gateway.infra import db

logger = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4004


def _query(scope: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {key: values[-1] for key, values in parsed.items()}


def _token_from(scope: dict[str, Any], query: dict[str, str]) -> str:
    if query.get("token"):
        return query["token"]
    for name, value in scope.get("headers", []):
        if name == b"authorization" and value.lower().startswith(b"bearer "):
            return value[7:].decode("latin-1").strip()
    return ""



def _open(scope: dict[str, Any], token: str, chat_id: str
          ) -> tuple[Any | None, int, uuid.UUID | None]:
    """A socket's token row, its close code when refused, and its chat's id (None: not
    the user's or no such chat), in one database call."""
    token_row, refusal = socket_token(scope, token)
    if token_row is None:
        return None, refusal, None
    try:
        return token_row, 0, chat_id_for(token_row.user, chat_id)
    except GatewayError:
        return token_row, 0, None


class ChatConsumer(AsyncWebsocketConsumer):
    chat_id: str = ""
    last_sent: int = 0
    # No channel layer (a name CHANNEL_LAYERS does not have): see the module's docstring.
    channel_layer_alias = "none: chat sockets use the event hub"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending: dict[int, str] = {}
        self.buffering = False
        self.token = ""
        self.watch_keys: list[str] = []
        self.expiry_watch: asyncio.Task[None] | None = None
        self.socket_id = "ws." + secrets.token_hex(8)  # who answered, in the audit log

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' own ``dispatch``, without its ``aclose_old_connections()`` before every
        message: a thread hop (through asgiref's one thread-sensitive thread, shared by
        the process) for each frame received and, in team mode, for each event of the
        chat's group, every delta included. This consumer touches the database only
        through ``gateway.infra.db``, whose calls close stale connections on their own
        thread before and after (``DatabaseSyncToAsync``)."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        query = _query(self.scope)
        self.token = _token_from(self.scope, query)
        token_row, refusal, chat_key = await db(_open)(
            self.scope, self.token, self.scope["url_route"]["kwargs"]["chat_id"])
        if token_row is None:  # 4001 wrong or missing token, 4029 too many failures
            await self.accept()
            await self.close(code=refusal)
            return
        user = token_row.user
        await self.watch_revocation(token_row)
        if chat_key is None:
            await self.accept()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.chat_id = str(chat_key)
        self.user = user
        self.manager = get_manager()
        self.manager.ensure_sweeper()
        await self.accept()
        await self.send_snapshot(_since(query.get("since")))

    async def send_snapshot(self, since: int | None) -> None:
        """``agent.state``, then the retained events after ``since``; events published
        meanwhile wait in ``pending`` and follow, each once, in order."""
        state, last_seq = await db(store.socket_state)(uuid.UUID(self.chat_id))
        if not self.manager.hub.is_loaded(self.chat_id):
            await self.manager.hub.load(self.chat_id, last_seq)
        self.buffering = True
        replay = await self.manager.hub.replay(self.chat_id, since)
        # In the same step as the replay: no event falls between them.
        self.manager.hub.subscribe(self.chat_id, self, replay.last_seq)
        state["partial_text"] = replay.partial_text if state["running"] else ""
        if since is not None:
            state["replay_complete"] = replay.complete
        await self.send(text_data=encode(ev.STATE, state, replay.last_seq))
        for _, text in replay.events:
            await self.send(text_data=text)
        self.last_sent = replay.last_seq
        while self.pending:
            seq = min(self.pending)
            text = self.pending.pop(seq)
            if seq > self.last_sent:
                self.last_sent = seq
                await self.send(text_data=text)
        self.buffering = False

    async def deliver(self, seq: int, text: str) -> None:
        """An event from this process's hub (embedded default), in seq order."""
        if self.buffering:
            self.pending[seq] = text
            return
        if seq <= self.last_sent:
            return
        self.last_sent = seq
        try:
            await self.send(text_data=text)
        except Exception:  # noqa: BLE001 - one broken socket must not stop the turn
            logger.debug("dropping an event for a closing socket of chat %s", self.chat_id)

    # -- revocation --------------------------------------------------------------------
    async def watch_revocation(self, token_row: Any) -> None:
        """Be told of the token's or the user's revocation from before the socket is
        accepted (none can fall between), and close at the token's expiry."""
        self.watch_keys = revocation.watch(self, token_row.digest, token_row.user_id)
        if token_row.expiry is not None:
            self.expiry_watch = asyncio.create_task(self.close_at(token_row.expiry))

    async def close_at(self, expiry: Any) -> None:
        await asyncio.sleep(max(0.0, (expiry - timezone.now()).total_seconds()))
        await self.close(code=CLOSE_UNAUTHORIZED)

    async def revoke(self) -> None:
        """The token or its user was revoked (``gateway.revocation``), on any process."""
        await self.close(code=CLOSE_UNAUTHORIZED)

    async def recheck(self) -> None:
        """A revocation may have been missed (``gateway.revocation.recheck``)."""
        if not await self.still_authorized():
            await self.close(code=CLOSE_UNAUTHORIZED)

    async def still_authorized(self) -> bool:
        """The token checked again, as REST checks it at every request."""
        return await db(lookup_token)(self.token) is not None

    async def disconnect(self, code: int) -> None:
        if self.expiry_watch:
            self.expiry_watch.cancel()
        revocation.unwatch(self, self.watch_keys)
        if self.chat_id:
            self.manager.hub.unsubscribe(self.chat_id, self)
        # The turn goes on: it belongs to the chat, not to this socket.

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None
                      ) -> None:
        """Every frame is acted on only if the socket's token is still valid: checked in
        the database call that stores a plain message (the path to the first delta),
        before anything else for every other frame."""
        try:
            try:
                frame = frames.parse(text_data, settings.GATEWAY_MAX_FRAME_BYTES)
            except GatewayError:
                if not await self.still_authorized():
                    raise Unauthorized from None
                raise
            if isinstance(frame, frames.UserMessage) and not frame.attachments:
                await self.manager.submit(self.chat_id, frame.content, frame.stream,
                                          token=self.token)
                return
            if not await self.still_authorized():
                raise Unauthorized
            await self.dispatch_frame(frame)
        except Unauthorized:
            await self.close(code=CLOSE_UNAUTHORIZED)
        except GatewayError as exc:
            await self.send_error(exc.code, exc.message)

    async def dispatch_frame(self, frame: frames.Frame) -> None:
        if isinstance(frame, frames.UserMessage):
            content = frame.content
            if frame.attachments:  # the files app turns the references into content blocks
                content = await db(with_attachments)(
                    uuid.UUID(self.chat_id), content, frame.attachments)
            await self.manager.submit(self.chat_id, content, frame.stream)
        elif isinstance(frame, frames.Cancel):
            await self.manager.cancel(self.chat_id)
        else:
            verdicts = await db(_checked_verdicts)(
                uuid.UUID(self.chat_id), frame)
            await db(note_verdicts)(  # who answered, for the audit log
                self.user, self.chat_id, verdicts, self.scope, self.socket_id)
            await self.manager.send_verdicts(self.chat_id, verdicts)

    async def send_error(self, code: str, message: str) -> None:
        """An error for this socket only; it carries the chat's current seq unchanged."""
        await self.send(text_data=encode(ev.ERROR, {"code": code, "message": message},
                                         self.last_sent))


def _since(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return max(int(raw), 0)
    except ValueError:
        return None


def _checked_verdicts(chat_id: uuid.UUID, frame: frames.Approval) -> dict[str, str]:
    """The verdicts to send, checked against the calls that are actually pending."""
    pending = {p["id"] for p in store.pending_approvals(chat_id)}
    if not pending:
        raise GatewayError("invalid_event", "no tool call is waiting for approval")
    if frame.verdicts is None:
        verdict = "allow" if frame.approve_all else "deny"
        return {call_id: verdict for call_id in pending}
    unknown = sorted(set(frame.verdicts) - pending)
    if unknown:
        raise GatewayError("invalid_event", "not waiting for approval: "
                           + ", ".join(u[:80] for u in unknown[:10]))
    return dict(frame.verdicts)

