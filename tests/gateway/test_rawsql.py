"""``gateway.rawsql.insert`` stores the row ``objects.create`` stores (this directory also
runs on PostgreSQL, and ``tests/chats/test_hotsql.py`` checks messages the same way)."""

from __future__ import annotations

import decimal
from typing import Any

import pytest

from gateway import rawsql
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db


def test_a_usage_row_inserted_is_the_row_the_orm_creates(alice: Any) -> None:
    # ``model`` is a field of UsageRecord: it must not clash with insert's own argument.
    fields = dict(user_id=alice.user.pk, username="alice", chat_id=None, profile_name="p",
                  model="gpt-x", input_tokens=5, output_tokens=7, duration_ms=12,
                  cost=decimal.Decimal("0.000123"), purpose="title")
    ours = rawsql.insert(UsageRecord, **fields)
    theirs = UsageRecord.objects.create(**fields).pk
    columns = [f.attname for f in UsageRecord._meta.concrete_fields
               if f.attname not in ("id", "created_at")]
    rows = {r["id"]: r for r in UsageRecord.objects.values("id", *columns)}
    assert {k: v for k, v in rows[ours].items() if k != "id"} == \
        {k: v for k, v in rows[theirs].items() if k != "id"}
    assert rows[ours]["purpose"] == "title" and rows[ours]["charge_id"] is None


def test_a_field_the_model_does_not_have_is_refused(alice: Any) -> None:
    with pytest.raises(TypeError):
        rawsql.insert(UsageRecord, user_id=alice.user.pk, colour="red")
