"""Recording model calls, admitting turns under budgets, and reading usage back.

Budgets hold across server processes because every admission runs in one transaction
that first locks the budget rows that apply (``SELECT ... FOR UPDATE`` on PostgreSQL;
SQLite serialises writers anyway), then sums the ledger and the open charges, then opens
its own charge. Two admissions for the same budget therefore never read the same total.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any, Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncMonth
from django.utils import timezone

from gateway import rawsql
from gateway.errors import GatewayError
from usage.models import Budget, TurnCharge, UsageRecord, money

ZERO = decimal.Decimal(0)
# How long back the largest turn of a user is looked for (the estimate of a running one).
ESTIMATE_WINDOW = dt.timedelta(days=30)


# --- the ledger ------------------------------------------------------------------------

def record_call(*, user_id: int, chat_id: str | None, profile_name: str, model: str,
                input_tokens: int, output_tokens: int, duration_ms: int,
                charge_id: int | None, purpose: str = "turn",
                username: str | None = None) -> UsageRecord:
    """Write one model call to the ledger (and add it to its turn's charge). Every
    call counts against the budgets alike, whatever its ``purpose``. The price comes
    from the cached configuration (``chats.config``); ``username`` saves a query when
    the caller knows it. Without a charge this is one INSERT."""
    from chats import config

    price = config.current().prices.get(profile_name)
    cost = price.cost(input_tokens, output_tokens) if price else None
    if username is None:
        username = get_user_model().objects.filter(pk=user_id) \
            .values_list("username", flat=True).first() or ""
    fields = dict(user_id=user_id, username=username, chat_id=chat_id,
                  profile_name=profile_name, model=model, input_tokens=input_tokens,
                  output_tokens=output_tokens, duration_ms=duration_ms, cost=cost,
                  charge_id=charge_id, purpose=purpose)
    if charge_id is None:
        return _insert_record(fields)
    with transaction.atomic():
        record = _insert_record(fields)
        TurnCharge.objects.filter(pk=charge_id).update(
            tokens=F("tokens") + input_tokens + output_tokens,
            cost=F("cost") + (cost or ZERO))
    return record


def _insert_record(fields: dict[str, Any]) -> UsageRecord:
    """``UsageRecord.objects.create`` without the ORM's insert machinery (a row every
    model call; ``gateway.rawsql``); the record is built from what was stored."""
    now = timezone.now()
    pk = rawsql.insert(UsageRecord, created_at=now, **fields)
    record = UsageRecord(pk=pk, created_at=now, **fields)
    record._state.adding = False
    return record


# --- budgets ---------------------------------------------------------------------------

def period_bounds(period: str, now: dt.datetime | None = None
                  ) -> tuple[dt.datetime, dt.datetime]:
    """Start of the current day or month and when it resets (server time zone)."""
    now = timezone.localtime(now or timezone.now())
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return start, start + dt.timedelta(days=1)
    start = start.replace(day=1)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return start, following


def budgets_of(user: Any) -> QuerySet[Budget]:
    """The budgets that apply to ``user``: his own and his groups'."""
    # A subquery, not a join: the admission locks these rows (FOR UPDATE), which
    # PostgreSQL allows neither with DISTINCT nor on the nullable side of an outer join.
    return Budget.objects.filter(Q(user=user) | Q(group__in=user.groups.values("pk")))


def _members(budget: Budget) -> Q:
    return Q(user_id=budget.user_id) if budget.user_id else Q(user__groups=budget.group_id)


@dataclass
class BudgetStatus:
    budget: Budget
    used_tokens: int
    used_cost: decimal.Decimal
    resets_at: dt.datetime

    def remaining(self) -> dict[str, Any]:
        b = self.budget
        return {
            "tokens": None if b.limit_tokens is None
            else max(b.limit_tokens - self.used_tokens, 0),
            "cost": None if b.limit_cost is None else money(max(b.limit_cost - self.used_cost,
                                                                  ZERO)),
        }

    def reached(self, more_tokens: float = 0, more_cost: float | decimal.Decimal = 0) -> bool:
        b = self.budget
        if b.limit_tokens is not None and self.used_tokens + more_tokens >= b.limit_tokens:
            return True
        return b.limit_cost is not None and \
            self.used_cost + decimal.Decimal(more_cost) >= b.limit_cost

    def to_dict(self) -> dict[str, Any]:
        return {**self.budget.to_dict(), "used_tokens": self.used_tokens,
                "used_cost": money(self.used_cost), "remaining": self.remaining(),
                "resets_at": self.resets_at.isoformat()}


def status_of(budget: Budget, now: dt.datetime | None = None) -> BudgetStatus:
    start, resets = period_bounds(budget.period, now)
    sums = UsageRecord.objects.filter(_members(budget), created_at__gte=start) \
        .aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost"))
    return BudgetStatus(budget, (sums["i"] or 0) + (sums["o"] or 0), sums["c"] or ZERO, resets)


def _estimate(user_ids: Iterable[int]) -> tuple[float, float]:
    """Tokens and cost a running turn may still use: the largest closed turn of these
    users lately; infinite when none is known (then a running turn blocks the next)."""
    since = timezone.now() - ESTIMATE_WINDOW
    top = TurnCharge.objects.filter(user_id__in=list(user_ids), closed_at__gte=since) \
        .aggregate(t=Max("tokens"), c=Max("cost"))
    if top["t"] is None:
        return float("inf"), float("inf")
    return float(top["t"]), float(top["c"] or 0)


def _pending(budget: Budget) -> tuple[float, float]:
    """What the turns running under ``budget`` may still add to it."""
    open_charges = list(TurnCharge.objects.filter(
        _members(budget), closed_at__isnull=True, expires_at__gt=timezone.now()))
    if not open_charges:
        return 0.0, 0.0
    tokens, cost = _estimate({c.user_id for c in open_charges})
    more_tokens = sum(max(tokens - c.tokens, 0) for c in open_charges)
    more_cost = sum(max(cost - float(c.cost), 0) for c in open_charges)
    return more_tokens, more_cost


class BudgetExceeded(GatewayError):
    """A turn refused before any upstream call; ``remaining`` and ``resets_at`` go to
    the client with the error."""

    def __init__(self, status: BudgetStatus, running: bool) -> None:
        when = status.resets_at.strftime("%Y-%m-%d %H:%M %Z")
        if running and not status.reached():
            message = (f"The {status.budget.period}ly budget of {status.budget.subject()} is "
                       "nearly used and other turns that may use the rest are running; try "
                       "again when they have finished.")
        else:
            message = (f"The {status.budget.period}ly budget of {status.budget.subject()} is "
                       f"used up; it resets at {when}.")
        super().__init__("budget_exceeded", message, 429)
        self.remaining = status.remaining()
        self.resets_at = status.resets_at

    def event_data(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "remaining": self.remaining,
                "resets_at": self.resets_at.astimezone(dt.timezone.utc)
                .strftime("%Y-%m-%dT%H:%M:%SZ")}


def admit_turn(user_id: int, chat_id: str | None) -> int | None:
    """Admit a turn of ``user_id`` or raise ``BudgetExceeded``; returns the id of the
    turn's charge (None when no budget applies). Close it with ``close_turn``."""
    return admit_user_turn(get_user_model().objects.get(pk=user_id), chat_id)


def admit_user_turn(user: Any, chat_id: str | None) -> int | None:
    """``admit_turn`` for a user already read."""
    with transaction.atomic():
        budgets = list(budgets_of(user).select_for_update().order_by("id"))
        if not budgets:
            return None
        for budget in budgets:
            # The running turns first, the ledger after: a turn that records its call
            # between the two reads is then counted twice (refused a little early), never
            # missed (each read sees what was committed when it ran, not one snapshot).
            more_tokens, more_cost = _pending(budget)
            status = status_of(budget)
            if status.reached(more_tokens, more_cost):
                raise BudgetExceeded(status, running=bool(more_tokens or more_cost))
        lifetime = dt.timedelta(seconds=settings.GATEWAY_BUDGET_CHARGE_SECONDS)
        return TurnCharge.objects.create(user=user, chat_id=chat_id,
                                         expires_at=timezone.now() + lifetime).id


def over_budget(user_id: int) -> bool:
    """Whether a budget of the user (his own or a group's) is used up by what the ledger
    holds already. For small calls after a turn (a chat's title), which are skipped
    rather than refused: running turns' estimates do not count here."""
    from chats import config

    if not config.current().budgets_exist:
        return False
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return True
    return any(status_of(budget).reached() for budget in budgets_of(user))


def close_turn(charge_id: int | None) -> None:
    if charge_id is not None:
        TurnCharge.objects.filter(pk=charge_id).update(closed_at=timezone.now())


# --- reading usage ---------------------------------------------------------------------

GROUPINGS = {
    "user": F("username"),
    "profile": F("profile_name"),
    "model": F("model"),
    "purpose": F("purpose"),
    "day": TruncDate("created_at"),
    "month": TruncMonth("created_at"),
}


def records(user: Any | None, start: dt.datetime | None, end: dt.datetime | None
            ) -> QuerySet[UsageRecord]:
    """The ledger, of one user (None: everyone) in ``[start, end)``."""
    rows = UsageRecord.objects.all()
    if user is not None:
        rows = rows.filter(user=user)
    if start is not None:
        rows = rows.filter(created_at__gte=start)
    if end is not None:
        rows = rows.filter(created_at__lt=end)
    return rows


def _key(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()[:7]  # TruncMonth: "2026-12"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def grouped(rows: QuerySet[UsageRecord], group_by: str) -> list[dict[str, Any]]:
    """Sums per user, profile, model, purpose, day or month, in key order."""
    sums = rows.order_by().annotate(key=GROUPINGS[group_by]).values("key").annotate(
        calls=Count("id"), input_tokens=Sum("input_tokens"),
        output_tokens=Sum("output_tokens"), cost=Sum("cost"),
        duration_ms=Sum("duration_ms")).order_by("key")
    return [{"key": _key(s["key"]), "calls": s["calls"], "input_tokens": s["input_tokens"],
             "output_tokens": s["output_tokens"], "cost": money(s["cost"]),
             "duration_ms": s["duration_ms"]} for s in sums]


def totals(rows: QuerySet[UsageRecord]) -> dict[str, Any]:
    sums = rows.aggregate(calls=Count("id"), i=Sum("input_tokens"), o=Sum("output_tokens"),
                          c=Sum("cost"))
    return {"calls": sums["calls"], "input_tokens": sums["i"] or 0,
            "output_tokens": sums["o"] or 0, "cost": money(sums["c"])}
