"""Search over a user's chats: titles and message text.

One API, two engines: SQLite's FTS5 (a virtual table kept by triggers, created in
migration 0003) and PostgreSQL's full-text search (``to_tsvector`` over the same text,
with a GIN expression index). Both match every word of the query as a word prefix, so
"deploy kube" finds "deployment on kubernetes". Titles are short and per user: they are
matched with a case-insensitive substring test on both engines.
"""

from __future__ import annotations

import re

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL

# Words of a query: letters and digits only, so nothing of the engine's query syntax
# (quotes, NEAR, column filters, operators) can come from a user.
_WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 12

# --- SQLite -----------------------------------------------------------------------------
# The text of a message's content: a JSON string, or the "text" parts of content blocks.
_SQLITE_TEXT = """CASE json_type(new.content)
    WHEN 'text' THEN json_extract(new.content, '$')
    WHEN 'array' THEN (SELECT group_concat(json_extract(value, '$.text'), ' ')
                       FROM json_each(new.content))
    ELSE '' END"""

SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE chats_message_fts USING fts5("
    "body, chat_id UNINDEXED, tokenize = 'unicode61 remove_diacritics 2')",
    # rowid is the message id, so updates and deletes find their row without a scan.
    f"""CREATE TRIGGER chats_message_fts_insert AFTER INSERT ON chats_message
        WHEN new.role IN ('user', 'assistant') BEGIN
        INSERT INTO chats_message_fts(rowid, body, chat_id)
        VALUES (new.id, {_SQLITE_TEXT}, new.chat_id); END""",
    f"""CREATE TRIGGER chats_message_fts_update AFTER UPDATE OF content ON chats_message
        WHEN new.role IN ('user', 'assistant') BEGIN
        DELETE FROM chats_message_fts WHERE rowid = old.id;
        INSERT INTO chats_message_fts(rowid, body, chat_id)
        VALUES (new.id, {_SQLITE_TEXT}, new.chat_id); END""",
    """CREATE TRIGGER chats_message_fts_delete AFTER DELETE ON chats_message BEGIN
        DELETE FROM chats_message_fts WHERE rowid = old.id; END""",
    # Messages written before this migration.
    f"""INSERT INTO chats_message_fts(rowid, body, chat_id)
        SELECT new.id, {_SQLITE_TEXT}, new.chat_id FROM chats_message AS new
        WHERE new.role IN ('user', 'assistant')""",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS chats_message_fts_insert",
    "DROP TRIGGER IF EXISTS chats_message_fts_update",
    "DROP TRIGGER IF EXISTS chats_message_fts_delete",
    "DROP TABLE IF EXISTS chats_message_fts",
]

# --- PostgreSQL -------------------------------------------------------------------------
# The same text as an immutable expression (an index may only use those).
_PG_TEXT = ("CASE jsonb_typeof(content) WHEN 'string' THEN content #>> '{}' "
            "WHEN 'array' THEN jsonb_path_query_array(content, '$[*].text')::text "
            "ELSE '' END")
_PG_VECTOR = f"to_tsvector('simple'::regconfig, {_PG_TEXT})"
PG_CREATE = [f"CREATE INDEX chats_message_fts ON chats_message USING GIN ({_PG_VECTOR}) "
             "WHERE role IN ('user', 'assistant')"]
PG_DROP = ["DROP INDEX IF EXISTS chats_message_fts"]


def words(query: str) -> list[str]:
    return _WORD.findall(query)[:MAX_WORDS]


def _message_match(terms: list[str]) -> RawSQL:
    """Ids of chats with a message that holds every term (as a word prefix)."""
    if connection.vendor == "postgresql":
        tsquery = " & ".join(f"{t}:*" for t in terms)
        return RawSQL("SELECT chat_id FROM chats_message WHERE role IN ('user', 'assistant')"
                      f" AND {_PG_VECTOR} @@ to_tsquery('simple'::regconfig, %s)", [tsquery])
    fts = " ".join(f'"{t}"*' for t in terms)
    return RawSQL("SELECT chat_id FROM chats_message_fts WHERE chats_message_fts MATCH %s",
                  [fts])


def matching(query: str) -> Q:
    """A filter on ``Chat`` for chats whose title or messages match ``query``."""
    terms = words(query)
    if not terms:
        return Q(pk__in=[])
    title = Q()
    for term in terms:
        title &= Q(title__icontains=term)
    return title | Q(pk__in=_message_match(terms))
