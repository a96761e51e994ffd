"""``/api/usage``, ``/api/usage/export``, ``/api/budgets`` and ``/api/prices``."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from usage import services
from usage.models import Budget, UsageRecord


def spend(actor, tokens: tuple[int, int], profile: str = "fake", days_ago: int = 0):
    record = services.record_call(user_id=actor.user.pk, chat_id=None, profile_name=profile,
                                  model=f"{profile}-model", input_tokens=tokens[0],
                                  output_tokens=tokens[1], duration_ms=10, charge_id=None)
    if days_ago:
        UsageRecord.objects.filter(pk=record.pk).update(
            created_at=timezone.now() - dt.timedelta(days=days_ago))


def test_a_member_sees_his_own_usage_only(alice, bob):
    spend(alice, (10, 5))
    spend(bob, (100, 50))
    body = alice.client.get("/api/usage").json()
    assert body["totals"] == {"calls": 1, "input_tokens": 10, "output_tokens": 5,
                              "cost": None}
    assert [r["user"] for r in body["records"]] == ["alice"]
    assert alice.client.get("/api/usage?user=bob").status_code == 403
    assert alice.client.get("/api/usage?user=alice").status_code == 200


def test_an_admin_groups_everyones_usage_by_user_profile_and_day(admin, alice, bob):
    spend(alice, (10, 5), "fast")
    spend(bob, (100, 50), "big")
    spend(bob, (1, 1), "big", days_ago=3)
    by_user = admin.client.get("/api/usage?group_by=user").json()["groups"]
    assert [(g["key"], g["input_tokens"], g["calls"]) for g in by_user] == \
        [("alice", 10, 1), ("bob", 101, 2)]
    by_profile = admin.client.get("/api/usage?group_by=profile&user=bob").json()["groups"]
    assert [(g["key"], g["output_tokens"]) for g in by_profile] == [("big", 51)]
    today = timezone.now().date()
    by_day = admin.client.get(f"/api/usage?group_by=day&from={today}&to={today}").json()
    assert [g["key"] for g in by_day["groups"]] == [today.isoformat()]
    assert by_day["totals"]["calls"] == 2
    by_month = admin.client.get("/api/usage?group_by=month").json()["groups"]
    assert all(len(g["key"]) == 7 for g in by_month)


def test_bad_queries_get_the_error_body(admin):
    for query, field in (("group_by=week", "group_by"), ("from=yesterday", "from"),
                         ("from=2026-02-02&to=2026-02-01", "to"), ("user=nobody", "user")):
        response = admin.client.get(f"/api/usage?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"] == "invalid_request" and field in response.json()["fields"]


def test_the_export_is_csv_of_every_call_or_of_the_groups(admin, alice):
    spend(alice, (7, 3))
    rows = admin.client.get("/api/usage/export").content.decode().splitlines()
    assert rows[0] == "created_at,user,chat_id,profile,model,input_tokens,output_tokens," \
                      "duration_ms,cost,purpose"
    assert rows[1].split(",")[1:] == ["alice", "", "fake", "fake-model", "7", "3", "10", "",
                                      "turn"]
    grouped = admin.client.get("/api/usage/export?group_by=user").content.decode()
    assert grouped.splitlines()[1] == "alice,1,7,3,,10"


def test_admins_set_budgets_and_members_read_their_own(admin, alice, bob):
    made = admin.client.post("/api/budgets", {"user": "alice", "period": "day",
                                              "limit_tokens": 500}, format="json")
    assert made.status_code == 201 and made.json()["remaining"]["tokens"] == 500
    admin.client.post("/api/budgets", {"user": "bob", "period": "month",
                                       "limit_cost": "3.5"}, format="json")
    assert [b["user"] for b in alice.client.get("/api/budgets").json()["budgets"]] == ["alice"]
    assert len(admin.client.get("/api/budgets").json()["budgets"]) == 2
    again = admin.client.post("/api/budgets", {"user": "alice", "period": "day",
                                               "limit_tokens": 5}, format="json")
    assert again.status_code == 409
    budget_id = made.json()["id"]
    changed = admin.client.patch(f"/api/budgets/{budget_id}", {"limit_tokens": 9},
                                 format="json")
    assert changed.json()["limit_tokens"] == 9
    assert alice.client.patch(f"/api/budgets/{budget_id}", {"limit_tokens": 1},
                              format="json").status_code == 403
    assert alice.client.post("/api/budgets", {"user": "alice", "period": "month",
                                              "limit_tokens": 1}, format="json").status_code == 403
    assert admin.client.delete(f"/api/budgets/{budget_id}").status_code == 204
    assert not Budget.objects.filter(pk=budget_id).exists()


def test_a_budget_needs_one_subject_and_a_limit(admin, alice):
    for body in ({"period": "day", "limit_tokens": 1},
                 {"user": "alice", "group": "x", "period": "day", "limit_tokens": 1},
                 {"user": "alice", "period": "day"},
                 {"user": "alice", "period": "week", "limit_tokens": 1},
                 {"user": "ghost", "period": "day", "limit_tokens": 1},
                 {"user": "alice", "period": "day", "limit_tokens": 1, "extra": 1}):
        response = admin.client.post("/api/budgets", body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"] == "invalid_request"


def test_admins_price_profiles_and_members_read_prices(admin, alice, profile):
    put = admin.client.put("/api/prices/fake", {"input_per_million": "0.15",
                                                "output_per_million": "0.6"}, format="json")
    assert put.json() == {"profile": "fake", "currency": "USD", "input_per_million": "0.15",
                          "output_per_million": "0.6"}
    assert alice.client.get("/api/prices").json()["prices"][0]["profile"] == "fake"
    assert alice.client.put("/api/prices/fake", {"input_per_million": "0",
                                                 "output_per_million": "0"},
                            format="json").status_code == 403
    assert admin.client.put("/api/prices/nope", {"input_per_million": "1",
                                                 "output_per_million": "1"},
                            format="json").status_code == 404
    assert admin.client.put("/api/prices/fake", {"input_per_million": "-1",
                                                 "output_per_million": "1"},
                            format="json").status_code == 400
    assert admin.client.delete("/api/prices/fake").status_code == 204
    assert alice.client.get("/api/prices").json()["prices"] == []


def test_usage_needs_a_token(anon):
    assert anon.get("/api/usage").status_code == 401
