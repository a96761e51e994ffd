"""``INSERT`` of one row without the ORM's query building, for rows written on every
turn (messages, usage ledger rows). The ORM spends a few hundred microseconds of Python
on each ``objects.create``, more than PostgreSQL's round trip; this builds the statement
once per model and prepares each value with the model's own field, as ``create`` does,
for SQLite and PostgreSQL alike. No model signals are sent: use it only for models that
have no receivers."""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.utils import timezone


@functools.cache
def _statement(model: Any) -> tuple[str, tuple[Any, ...], frozenset[str]]:
    fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key)
    quote = connection.ops.quote_name
    sql = (f"INSERT INTO {quote(model._meta.db_table)} "
           f"({', '.join(quote(f.column) for f in fields)}) "
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    if connection.features.can_return_columns_from_insert:
        sql += f" RETURNING {quote(model._meta.pk.column)}"
    return sql, fields, frozenset(n for f in fields for n in (f.name, f.attname))


def insert(model: Any, /, **given: Any) -> int:
    """``model.objects.create(**given).pk``: missing fields take their defaults,
    ``auto_now``/``auto_now_add`` fields the time now."""
    sql, fields, names = _statement(model)
    unknown = set(given) - names
    if unknown:
        raise TypeError(f"{model.__name__} has no field(s) {sorted(unknown)}")
    values = []
    now = timezone.now()
    for f in fields:
        if f.attname in given:
            value = given[f.attname]
        elif f.name in given:
            value = given[f.name]
        elif getattr(f, "auto_now_add", False) or getattr(f, "auto_now", False):
            value = now
        else:
            value = f.get_default()
        values.append(f.get_db_prep_save(value, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        if connection.features.can_return_columns_from_insert:
            return cursor.fetchone()[0]
        return cursor.lastrowid
