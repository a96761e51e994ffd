"""Writing the audit log: one ``record`` for every kind, the tool-call observer of a
turn, verdict notes from sockets, secret masking, and the retention purge."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import re
import time
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.utils import timezone

from agents import events as ev
from audit.models import AuditEvent, Verdict

# The HTTP request being served (set by ``audit.middleware``), so a change made through
# any view, the API or the Django admin, is put down to who made it.
current_request: contextvars.ContextVar[Any] = contextvars.ContextVar("audit_request",
                                                                     default=None)

# A key names a secret when one of its underscore-separated words is one of these (so
# "api_key_encrypted" and "bearer_token_env" do, "limit_tokens" and "input_tokens" not).
SECRET_KEY_NAME = re.compile(r"(^|_)(api|key|secret|password|passwd|token|authorization|"
                             r"cookie|credentials?|env|headers?)(_|$)", re.I)
MASK = "********"


def mask(value: Any, key: str = "") -> Any:
    """``value`` with everything under a secret-looking key replaced by ``MASK`` (an
    empty value stays empty, so "no key set" still reads as such)."""
    if key and SECRET_KEY_NAME.search(key):
        if isinstance(value, dict):
            return {k: MASK for k in value}
        return MASK if value not in (None, "", [], {}) else value
    if isinstance(value, dict):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def _client_of(request: Any) -> str:
    return str(request.META.get("REMOTE_ADDR", "")) if request is not None else ""


def _request_actor() -> tuple[Any, str]:
    request = current_request.get()
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return user, _client_of(request)
    return None, _client_of(request)


def record(kind: str, action: str, *, target: str = "", data: dict[str, Any] | None = None,
           actor: Any = None, chat_id: Any = None, client: str | None = None) -> AuditEvent:
    """Append one record. Without ``actor`` the current request's user is taken."""
    found_actor, found_client = _request_actor()
    actor = actor if actor is not None else found_actor
    return AuditEvent.objects.create(
        kind=kind, action=action[:64], target=target[:200], chat_id=chat_id,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_name=actor.get_username() if actor is not None else "",
        client=(client if client is not None else found_client)[:100],
        data=mask(data or {}))


# -- tool calls --------------------------------------------------------------------------

def note_verdicts(user: Any, chat_id: str, verdicts: dict[str, str],
                  scope: dict[str, Any], socket: str) -> None:
    """A socket answered a tool request: remember who, for the calls' records."""
    host = scope.get("client") or ("", "")
    client = f"{host[0]}:{host[1]}" if host and host[0] else ""
    Verdict.objects.bulk_create([
        Verdict(chat_id=chat_id, tool_call_id=call_id[:200], verdict=verdict, user=user,
                username=user.get_username(), socket=socket[:200], client=client)
        for call_id, verdict in verdicts.items()])


def _write_tool_call(user_id: int, chat_id: str, call: dict[str, Any]) -> None:
    from django.contrib.auth import get_user_model

    note = Verdict.objects.filter(chat_id=chat_id, tool_call_id=call["id"]).order_by("id") \
        .first() if call["decision"] == "ask" else None
    if call["decision"] == "ask":
        # A turn cancelled while the call awaited its verdict: nobody answered it.
        unanswered = "cancelled" if call["status"] == "cancelled" else "none"
        call["verdict"] = note.verdict if note else unanswered
        call["approver"] = note.username if note else None
        call["socket"] = note.socket if note else None
        call["approver_client"] = note.client if note else None
    record("tool_call", call["tool"], target=f"chat {chat_id}", chat_id=chat_id,
           actor=get_user_model().objects.filter(pk=user_id).first(), client="", data=call)


def _arguments(raw: Any) -> Any:
    """A call's arguments as the events show them: the object, else ``{"_raw": text}``."""
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw or "{}")
    except (TypeError, ValueError):
        parsed = None
    return parsed if isinstance(parsed, dict) else {"_raw": raw}


class ToolAudit:
    """Watches one turn's events and writes one record per tool call when its result
    is out: the policy decision (allow, deny, ask), the verdict and who gave it, the
    result status and how long the tool ran. Every other event passes untouched.

    Every call the model asked for is known from its reply on (``expect``), so a call
    whose result never came out (the turn was cancelled while it ran or awaited its
    verdict, or before its turn in the round came; the turn failed) is still written,
    once, by ``close`` at the end of the turn: status ``cancelled`` or ``interrupted``.
    """

    WATCHED = frozenset({ev.TOOL_REQUEST, ev.TOOL_DENIED, ev.TOOL_USE, ev.TOOL_RESULT})

    def __init__(self, chat_id: str, user_id: int) -> None:
        self.chat_id = chat_id
        self.user_id = user_id
        self.calls: dict[str, dict[str, Any]] = {}
        self.started: dict[str, float] = {}

    def expect(self, tool_calls: list[dict[str, Any]]) -> None:
        """The calls of a model reply (chat-completions ``tool_calls``), as stored."""
        for item in tool_calls:
            function = item.get("function") or {}
            call = self._call(str(item.get("id") or ""), str(function.get("name") or ""),
                              _arguments(function.get("arguments")))
            # Until an event says what became of it; a call the policy allows has no
            # event of its own before it runs (agent.tool_use makes it "allow").
            call["decision"] = "undecided"

    def _call(self, call_id: str, name: str, arguments: Any = None) -> dict[str, Any]:
        call = self.calls.setdefault(call_id, {"id": call_id, "tool": name,
                                               "decision": "allow", "arguments": {}})
        if arguments is not None:
            call["arguments"] = arguments
        return call

    async def observe(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type in (ev.TOOL_REQUEST, ev.TOOL_DENIED):
            for item in data["tool_calls"]:
                call = self._call(item["id"], item["name"], item["arguments"])
                call["decision"] = "ask" if event_type == ev.TOOL_REQUEST else "deny"
                if event_type == ev.TOOL_DENIED:
                    call["reason"] = data.get("reason", "")
        elif event_type == ev.TOOL_USE:
            call = self._call(data["tool_use_id"], data["tool_name"], data["arguments"])
            if call["decision"] == "undecided":
                call["decision"] = "allow"
            self.started[data["tool_use_id"]] = time.perf_counter()
        elif event_type == ev.TOOL_RESULT:
            await self._finish(data)

    async def _finish(self, data: dict[str, Any]) -> None:
        call_id = data["tool_use_id"]
        call = self.calls.pop(call_id, None) or {"id": call_id, "tool": data["tool_name"],
                                                 "decision": "allow", "arguments": {}}
        started = self.started.pop(call_id, None)
        call["ran"] = started is not None
        call["status"] = ("error" if data["is_error"] else "ok") if started is not None \
            else "not_run"
        call["duration_ms"] = round((time.perf_counter() - started) * 1000, 1) \
            if started is not None else None
        if started is None and call["decision"] in ("allow", "undecided"):
            call["decision"] = "invalid_arguments"
        await database_sync_to_async(_write_tool_call)(self.user_id, self.chat_id, call)

    async def close(self, status: str, reason: str) -> None:
        """The turn ended: write the calls whose result never came out with ``status``
        (``cancelled``, ``interrupted``), ``ran`` telling whether the tool had started."""
        now = time.perf_counter()
        for call_id in list(self.calls):
            call = self.calls.pop(call_id)
            started = self.started.pop(call_id, None)
            call["ran"] = started is not None
            call["status"] = status
            call["reason"] = reason
            call["duration_ms"] = round((now - started) * 1000, 1) \
                if started is not None else None
            await database_sync_to_async(_write_tool_call)(self.user_id, self.chat_id, call)


# -- retention ---------------------------------------------------------------------------

def purge(now: dt.datetime | None = None) -> int:
    """Remove records older than ``GATEWAY_AUDIT_RETENTION_DAYS`` (0 keeps all)."""
    days = settings.GATEWAY_AUDIT_RETENTION_DAYS
    if not days:
        return 0
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    Verdict.objects.filter(at__lt=cutoff).delete()
    # A queryset delete: the model's own delete() refuses single rows on purpose.
    removed, _ = AuditEvent.objects.filter(at__lt=cutoff).delete()
    return removed
