"""The statements every turn runs, as SQL written once per process.

Building a statement through the ORM costs about 0.3 ms of Python each time (the query
tree, its compilation, model instances), more than PostgreSQL's round trip, and a turn's
start and end run about a dozen; under load that Python is what the process waits on.
So the start of a turn (store the message, take the lock, take the oldest queued
message, read what the turn needs) and its end (the next message, or the lock given
back) are written here as plain SQL over the models' own tables and columns (read from
their ``_meta``), with parameters prepared by the models' fields (UUIDs, datetimes and
JSON differ between SQLite and PostgreSQL) and JSON results decoded by them too.

Only the hot path lives here; everything else uses the ORM. Each statement has its ORM
counterpart in ``tests/chats/test_hotsql.py``, which checks that both agree on both
databases.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from chats.models import Chat, Compaction, Message, openai_message
from gateway import rawsql


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _col(model: Any, field: str) -> str:
    return _q(model._meta.get_field(field).column)


@functools.cache
def _tables() -> dict[str, str]:
    user = get_user_model()
    return {"chat": _q(Chat._meta.db_table), "msg": _q(Message._meta.db_table),
            "comp": _q(Compaction._meta.db_table), "user": _q(user._meta.db_table),
            "user_pk": _q(user._meta.pk.column),
            "username": _col(user, user.USERNAME_FIELD),
            **{f"c_{f}": _col(Chat, f) for f in (
                "id", "owner", "title", "title_auto", "profile", "updated_at", "turn_owner",
                "turn_lease_until", "allowed_tools", "last_seq")},
            **{f"m_{f}": _col(Message, f) for f in (
                "id", "chat", "position", "role", "content", "tool_calls", "tool_call_id",
                "status", "stream", "compacted")},
            "k_id": _col(Compaction, "id"), "k_chat": _col(Compaction, "chat"),
            "k_summary": _col(Compaction, "summary")}


def _sql(template: str) -> str:
    return template.format(**_tables())


def _chat_id(chat_id: uuid.UUID | str) -> Any:
    return Chat._meta.pk.get_db_prep_value(chat_id, connection)


def _when(value: Any) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _json(model: Any, field: str, value: Any) -> Any:
    return model._meta.get_field(field).from_db_value(value, None, connection)


# --- the message ---------------------------------------------------------------------

def insert_message(chat_id: uuid.UUID | str, **given: Any) -> int:
    """``Message.objects.create(chat_id=..., **given)`` (no signals are connected to
    messages); returns the new id."""
    return rawsql.insert(Message, chat_id=chat_id, **given)


# --- the chat's row and its lock -------------------------------------------------------

def touch_chat(chat_id: uuid.UUID, title: str) -> None:
    """The chat's last activity now; an untitled chat is titled ``title`` (when given)."""
    if title:
        sql = _sql("UPDATE {chat} SET {c_updated_at} = %s, "
                   "{c_title} = CASE WHEN {c_title} = '' THEN %s ELSE {c_title} END, "
                   "{c_title_auto} = CASE WHEN {c_title} = '' THEN %s ELSE {c_title_auto} END "
                   "WHERE {c_id} = %s")
        params = [_when(timezone.now()), title, True, _chat_id(chat_id)]
    else:
        sql = _sql("UPDATE {chat} SET {c_updated_at} = %s WHERE {c_id} = %s")
        params = [_when(timezone.now()), _chat_id(chat_id)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def try_acquire(chat_id: uuid.UUID, owner: str, until: Any) -> bool:
    """Take the chat's turn lock if it is free."""
    with connection.cursor() as cursor:
        cursor.execute(_sql("UPDATE {chat} SET {c_turn_owner} = %s, {c_turn_lease_until} = %s "
                            "WHERE {c_id} = %s AND {c_turn_owner} IS NULL"),
                       [owner, _when(until), _chat_id(chat_id)])
        return cursor.rowcount > 0


def renew(chat_id: uuid.UUID, owner: str, until: Any, last_seq: int) -> bool:
    """Extend the lease if the lock is still ``owner``'s, saving how far seq got."""
    with connection.cursor() as cursor:
        cursor.execute(_sql("UPDATE {chat} SET {c_turn_lease_until} = %s, {c_last_seq} = %s "
                            "WHERE {c_id} = %s AND {c_turn_owner} = %s"),
                       [_when(until), last_seq, _chat_id(chat_id), owner])
        return cursor.rowcount > 0


def give_back(chat_id: uuid.UUID, owner: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_sql("UPDATE {chat} SET {c_turn_owner} = NULL, "
                            "{c_turn_lease_until} = NULL "
                            "WHERE {c_id} = %s AND {c_turn_owner} = %s"),
                       [_chat_id(chat_id), owner])


# --- what a turn reads when it starts ---------------------------------------------------

@dataclass(frozen=True)
class NextTurn:
    """The chat's row, its owner's name and the oldest queued message, read at once."""

    message_id: int | None  # None: nothing queued
    stream: bool
    owner_id: int
    username: str
    profile_id: int | None
    title_auto: bool
    allowed_tools: list[str]
    next_position: int  # the position the queued message takes
    summary: str | None  # the latest compaction's


def next_turn(chat_id: uuid.UUID) -> NextTurn | None:
    """None when the chat is gone."""
    sql = _sql(
        "SELECT c.{c_owner}, u.{username}, c.{c_profile}, c.{c_title_auto}, "
        "c.{c_allowed_tools}, m.{m_id}, m.{m_stream}, "
        "(SELECT MAX(p.{m_position}) FROM {msg} p WHERE p.{m_chat} = c.{c_id}), "
        "(SELECT k.{k_summary} FROM {comp} k WHERE k.{k_chat} = c.{c_id} "
        " ORDER BY k.{k_id} DESC LIMIT 1) "
        "FROM {chat} c JOIN {user} u ON u.{user_pk} = c.{c_owner} "
        "LEFT JOIN {msg} m ON m.{m_id} = (SELECT MIN(q.{m_id}) FROM {msg} q "
        " WHERE q.{m_chat} = c.{c_id} AND q.{m_status} = 'queued') "
        "WHERE c.{c_id} = %s")
    with connection.cursor() as cursor:
        cursor.execute(sql, [_chat_id(chat_id)])
        row = cursor.fetchone()
    if row is None:
        return None
    owner_id, username, profile_id, title_auto, tools, message_id, stream, top, summary = row
    return NextTurn(message_id=message_id, stream=bool(stream), owner_id=owner_id,
                    username=username, profile_id=profile_id, title_auto=bool(title_auto),
                    allowed_tools=_json(Chat, "allowed_tools", tools) or [],
                    next_position=0 if top is None else top + 1, summary=summary)


def take_message(message_id: int, position: int) -> None:
    """The queued message joins the conversation at ``position``."""
    with connection.cursor() as cursor:
        cursor.execute(_sql("UPDATE {msg} SET {m_position} = %s, {m_status} = 'done' "
                            "WHERE {m_id} = %s"), [position, message_id])


def conversation(chat_id: uuid.UUID) -> list[dict[str, Any]]:
    """The messages the model is sent (after the summary), in order, as OpenAI messages:
    in the conversation, not replaced by a compaction, not superseded, no system note."""
    sql = _sql("SELECT {m_role}, {m_content}, {m_tool_calls}, {m_tool_call_id} FROM {msg} "
               "WHERE {m_chat} = %s AND {m_compacted} = %s AND {m_position} IS NOT NULL "
               "AND {m_role} <> 'system' AND {m_status} <> 'superseded' "
               "ORDER BY {m_position}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [_chat_id(chat_id), False])
        rows = cursor.fetchall()
    return [openai_message(role, _json(Message, "content", content),
                           _json(Message, "tool_calls", calls), call_id)
            for role, content, calls, call_id in rows]
