"""When a job fires next: pure functions over the schedule (cron arithmetic is croniter's).

A job's next fire is always computed from *now*, never from the slot that was missed, so
after downtime a job fires once and then goes back to its schedule.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter


def cron_error(expression: str) -> str | None:
    """Why a cron expression is refused, or None. Only the classic 5 fields."""
    if len(expression.split()) != 5:
        return "Give 5 fields: minute hour day-of-month month day-of-week."
    if not croniter.is_valid(expression):
        return "Not a valid cron expression."
    return None


def timezone_error(name: str) -> str | None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "Not a time zone name (e.g. Europe/Paris or UTC)."
    return None if name in available_timezones() or name == "UTC" else \
        "Not a time zone name (e.g. Europe/Paris or UTC)."


def next_cron(expression: str, tz: str, after: dt.datetime) -> dt.datetime:
    """The first slot strictly after ``after``, read in ``tz``; returned in UTC."""
    local = after.astimezone(ZoneInfo(tz))
    following = croniter(expression, local).get_next(dt.datetime)
    return following.astimezone(dt.timezone.utc)


def first_fire(kind: str, *, cron: str, tz: str, interval: int | None,
               run_at: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
    """When a new (or re-enabled, or rescheduled) job fires first."""
    if kind == "once":
        return run_at  # a time in the past fires at once
    return following_fire(kind, cron=cron, tz=tz, interval=interval, now=now)


def following_fire(kind: str, *, cron: str, tz: str, interval: int | None,
                   now: dt.datetime) -> dt.datetime | None:
    """The fire after one taken at ``now`` (None: a one-off job is done)."""
    if kind == "cron":
        return next_cron(cron, tz, now)
    if kind == "interval":
        return now + dt.timedelta(seconds=interval or 60)
    return None
