"""Next fires from the schedule (croniter does the cron arithmetic)."""

from __future__ import annotations

import datetime as dt

from jobs.schedule import cron_error, first_fire, following_fire, next_cron, timezone_error

UTC = dt.timezone.utc


def test_cron_is_read_in_the_jobs_time_zone():
    after = dt.datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 14:00 in Paris (summer)
    assert next_cron("0 9 * * *", "Europe/Paris", after) == \
        dt.datetime(2026, 7, 2, 7, 0, tzinfo=UTC)


def test_the_next_fire_is_counted_from_now_not_from_the_missed_slot():
    now = dt.datetime(2026, 1, 1, 10, 30, 5, tzinfo=UTC)
    assert following_fire("cron", cron="* * * * *", tz="UTC", interval=None, now=now) == \
        dt.datetime(2026, 1, 1, 10, 31, tzinfo=UTC)
    assert following_fire("interval", cron="", tz="UTC", interval=600, now=now) == \
        now + dt.timedelta(minutes=10)
    assert following_fire("once", cron="", tz="UTC", interval=None, now=now) is None


def test_a_one_off_in_the_past_fires_at_once():
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    past = now - dt.timedelta(days=1)
    assert first_fire("once", cron="", tz="UTC", interval=None, run_at=past, now=now) == past


def test_bad_expressions_and_zones_are_named():
    assert cron_error("*/5 * * * *") is None
    assert cron_error("* * *") and cron_error("0 0 0 0 0 0") and cron_error("x * * * *")
    assert timezone_error("Asia/Tokyo") is None and timezone_error("Nowhere/City")
    assert timezone_error("../../etc/passwd")
