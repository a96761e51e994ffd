"""Which profiles a member may see and use (``/api/access``, the profile list, chats)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from profiles.models import ModelProfile


@pytest.fixture
def premium(profile):
    p = ModelProfile.objects.create(name="premium", provider="openai", model="big")
    return p


def test_a_profile_without_grants_is_open_to_everyone(alice, profile, premium):
    assert set(alice.client.get("/api/profiles").json()["profiles"]) == {"fake", "premium"}


def test_a_granted_profile_is_for_its_users_and_groups_only(admin, alice, bob, premium):
    team = Group.objects.create(name="team")
    bob.user.groups.add(team)
    put = admin.client.put("/api/access/premium", {"groups": ["team"]}, format="json")
    assert put.json() == {"open": False, "users": [], "groups": ["team"]}
    assert set(alice.client.get("/api/profiles").json()["profiles"]) == {"fake"}
    assert set(bob.client.get("/api/profiles").json()["profiles"]) == {"fake", "premium"}
    assert set(admin.client.get("/api/profiles").json()["profiles"]) == {"fake", "premium"}
    admin.client.put("/api/access/premium", {"users": ["alice"]}, format="json")
    assert set(alice.client.get("/api/profiles").json()["profiles"]) == {"fake", "premium"}
    assert set(bob.client.get("/api/profiles").json()["profiles"]) == {"fake"}
    opened = admin.client.put("/api/access/premium", {}, format="json").json()
    assert opened["open"] is True


def test_the_default_falls_back_to_the_first_allowed(admin, alice, profile, premium):
    premium.make_default()
    admin.client.put("/api/access/premium", {"users": ["admin"]}, format="json")
    assert alice.client.get("/api/profiles").json()["default"] == "fake"
    assert alice.client.get("/api/profiles/default").json() == {"default": "fake"}
    assert admin.client.get("/api/profiles").json()["default"] == "premium"
    chat = alice.client.post("/api/chats", {}, format="json").json()["chat_id"]
    assert alice.client.get(f"/api/chats/{chat}/profile").json()["profile_name"] == "fake"


def test_a_member_cannot_pick_a_profile_outside_his_access(admin, alice, premium):
    admin.client.put("/api/access/premium", {"users": ["admin"]}, format="json")
    made = alice.client.post("/api/chats", {"profile": "premium"}, format="json")
    assert made.status_code == 400 and made.json()["error"] == "profile_not_allowed"
    chat = alice.client.post("/api/chats", {}, format="json").json()["chat_id"]
    switch = alice.client.put(f"/api/chats/{chat}/profile", {"name": "premium"},
                              format="json")
    assert switch.status_code == 400 and "name" in switch.json()["fields"]
    assert alice.client.get("/api/profiles/premium").status_code == 404


def test_only_admins_grant_and_names_must_exist(admin, alice, premium):
    assert alice.client.get("/api/access").status_code == 403
    assert alice.client.put("/api/access/premium", {"users": ["alice"]},
                            format="json").status_code == 403
    bad = admin.client.put("/api/access/premium", {"users": ["ghost"]}, format="json")
    assert bad.status_code == 400 and "users" in bad.json()["fields"]
    assert admin.client.put("/api/access/nope", {}, format="json").status_code == 404
    listing = admin.client.get("/api/access").json()["profiles"]
    assert listing["premium"] == {"open": True, "users": [], "groups": []}
