"""Admitting turns under budgets (``usage.services``): what counts, and when a turn is
refused."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from usage import services
from usage.models import Budget, ProfilePrice, TurnCharge


def spend(user, tokens: tuple[int, int], charge: int | None = None, profile: str = "fake"):
    return services.record_call(user_id=user.pk, chat_id=None, profile_name=profile,
                                model="fake-model", input_tokens=tokens[0],
                                output_tokens=tokens[1], duration_ms=5, charge_id=charge)


def test_a_user_without_budget_is_admitted_without_a_charge(alice):
    assert services.admit_turn(alice.user.pk, None) is None
    assert TurnCharge.objects.count() == 0


def test_a_used_up_daily_budget_refuses_with_what_is_left_and_when_it_resets(alice):
    Budget.objects.create(user=alice.user, period="day", limit_tokens=100)
    spend(alice.user, (80, 20))
    with pytest.raises(services.BudgetExceeded) as refused:
        services.admit_turn(alice.user.pk, None)
    data = refused.value.event_data()
    assert data["code"] == "budget_exceeded" and data["remaining"] == {"tokens": 0,
                                                                       "cost": None}
    tomorrow = (timezone.now() + dt.timedelta(days=1)).date().isoformat()
    assert data["resets_at"] == f"{tomorrow}T00:00:00Z"


def test_yesterdays_usage_does_not_count_today(alice):
    Budget.objects.create(user=alice.user, period="day", limit_tokens=100)
    record = spend(alice.user, (500, 0))
    type(record).objects.filter(pk=record.pk).update(
        created_at=timezone.now() - dt.timedelta(days=1, hours=1))
    assert services.admit_turn(alice.user.pk, None) is not None


def test_a_running_turn_of_unknown_size_holds_back_the_next(alice):
    Budget.objects.create(user=alice.user, period="day", limit_tokens=1000)
    first = services.admit_turn(alice.user.pk, None)
    with pytest.raises(services.BudgetExceeded) as refused:
        services.admit_turn(alice.user.pk, None)
    assert "running" in refused.value.message
    services.close_turn(first)
    assert services.admit_turn(alice.user.pk, None) is not None


def test_once_a_turn_size_is_known_turns_run_together_up_to_the_limit(alice):
    Budget.objects.create(user=alice.user, period="day", limit_tokens=100)
    first = services.admit_turn(alice.user.pk, None)
    spend(alice.user, (20, 10), first)  # 30 tokens: the size of a turn now
    services.close_turn(first)
    # Spent 30, and each running turn may add 30: three fit under 100 (30 + 2 x 30 < 100
    # when the third asks), a fourth would not (30 + 3 x 30 >= 100).
    running = [services.admit_turn(alice.user.pk, None) for _ in range(3)]
    with pytest.raises(services.BudgetExceeded):
        services.admit_turn(alice.user.pk, None)
    assert all(running)


def test_a_charge_whose_process_died_stops_counting(alice):
    Budget.objects.create(user=alice.user, period="day", limit_tokens=1000)
    dead = services.admit_turn(alice.user.pk, None)
    TurnCharge.objects.filter(pk=dead).update(expires_at=timezone.now())
    assert services.admit_turn(alice.user.pk, None) is not None


def test_a_group_budget_counts_every_member_together(alice, bob):
    team = Group.objects.create(name="team")
    alice.user.groups.add(team)
    bob.user.groups.add(team)
    Budget.objects.create(group=team, period="month", limit_tokens=50)
    spend(alice.user, (30, 0))
    spend(bob.user, (20, 0))
    with pytest.raises(services.BudgetExceeded) as refused:
        services.admit_turn(bob.user.pk, None)
    assert "group team" in refused.value.message


def test_a_cost_limit_counts_the_profile_price(alice, profile):
    ProfilePrice.objects.create(profile=profile, input_per_million=decimal.Decimal("1000000"),
                                output_per_million=decimal.Decimal("0"))
    Budget.objects.create(user=alice.user, period="day", limit_cost=decimal.Decimal("5"))
    record = spend(alice.user, (4, 100))
    assert record.cost == decimal.Decimal("4")
    assert services.admit_turn(alice.user.pk, None) is not None  # 4 < 5
    spend(alice.user, (1, 0))
    with pytest.raises(services.BudgetExceeded) as refused:
        services.admit_turn(alice.user.pk, None)
    assert refused.value.remaining == {"tokens": None, "cost": "0"}


def test_a_profile_without_price_is_counted_in_tokens_only(alice):
    assert spend(alice.user, (10, 10), profile="unpriced").cost is None


def test_a_model_call_is_one_insert_with_the_price_from_the_cached_configuration(
        alice, profile, django_assert_num_queries):
    ProfilePrice.objects.create(profile=profile, input_per_million=decimal.Decimal("2"),
                                output_per_million=decimal.Decimal("0"))
    spend(alice.user, (1, 1))  # creates the policy rows: a new configuration version
    spend(alice.user, (1, 1))  # the configuration (prices with it) is cached from here on
    with django_assert_num_queries(1):  # the ledger row; price and name are known
        record = services.record_call(
            user_id=alice.user.pk, chat_id=None, profile_name="fake", model="fake-model",
            input_tokens=500_000, output_tokens=0, duration_ms=5, charge_id=None,
            username=alice.user.username)
    assert record.cost == decimal.Decimal("1") and record.username == alice.user.username
    # An admin's new price applies to the next call (the configuration is reloaded).
    ProfilePrice.objects.filter(profile=profile).update(input_per_million=4)  # no signal
    ProfilePrice.objects.get(profile=profile).save()  # a save, as the API and admin do
    assert spend(alice.user, (500_000, 0)).cost == decimal.Decimal("2")


@pytest.mark.parametrize("now, start, resets", [
    ("2026-12-31T23:59:00+00:00", "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
    ("2026-02-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"),
])
def test_a_month_starts_on_the_first_and_resets_on_the_next_first(now, start, resets):
    begin, end = services.period_bounds("month", dt.datetime.fromisoformat(now))
    assert (begin.isoformat(), end.isoformat()) == (start, resets)
