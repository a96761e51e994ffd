"""The audit log: admin-only reading with filters, append-only records, secrets
masked, configuration changes from any path, sign-ins, tokens, retention."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib import admin as django_admin
from django.test import Client
from django.utils import timezone

from audit.models import AppendOnlyError, AuditEvent
from audit.services import MASK, mask, purge, record


def test_only_admins_read_the_log_and_nobody_writes_it(admin, alice):
    record("config", "changed", target="sandbox")
    assert alice.client.get("/api/audit").status_code == 403
    assert admin.client.get("/api/audit").json()["events"][0]["target"] == "sandbox"
    for method in ("post", "put", "patch", "delete"):
        assert getattr(admin.client, method)("/api/audit").status_code == 405
        assert getattr(alice.client, method)("/api/audit").status_code in (403, 405)


def test_a_record_cannot_be_changed_or_deleted(db):
    event = record("config", "changed", target="sandbox")
    event.action = "nothing happened"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "changed"


def test_the_django_admin_shows_the_log_read_only(admin):
    model_admin = django_admin.site._registry[AuditEvent]
    request = type("Request", (), {"user": admin.user})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_secrets_are_masked_wherever_they_sit():
    data = {"api_key": "sk-1", "env": {"TOKEN": "x", "HOME": "/h"}, "model": "m",
            "nested": [{"password": "p", "name": "n"}], "empty_key": "",
            "bearer_token_env": "GH", "limit_tokens": 5, "input_tokens": 7}
    assert mask(data) == {"api_key": MASK, "env": {"TOKEN": MASK, "HOME": MASK},
                          "model": "m", "nested": [{"password": MASK, "name": "n"}],
                          "empty_key": "", "bearer_token_env": MASK, "limit_tokens": 5,
                          "input_tokens": 7}


def test_config_changes_record_before_and_after_and_who(admin):
    admin.client.put("/api/permissions", {"mode": "autonomous"}, format="json")
    event = AuditEvent.objects.filter(kind="config", target__startswith="permissions").first()
    assert event.actor_name == "admin" and event.action == "changed"
    assert event.data["after"]["mode"] == "autonomous"
    assert event.data["before"]["mode"] != "autonomous"


def test_a_profile_key_never_reaches_the_log(admin):
    admin.client.post("/api/profiles", {"name": "p1", "profile": {
        "provider": "openai", "model": "m", "api_key": "sk-top-secret-9999"}}, format="json")
    text = admin.client.get("/api/audit?kind=config").content.decode()
    assert "sk-top-secret" not in text and "9999" not in text
    assert '"api_key_encrypted": "********"' in text.replace('":"', '": "')


def test_users_groups_and_tokens_are_recorded(admin, alice):
    admin.client.post("/api/groups", {"name": "ops"}, format="json")
    admin.client.patch("/api/users/alice", {"groups": ["ops"], "is_staff": True},
                       format="json")
    made = alice.client.post("/api/tokens", {"name": "laptop"}, format="json").json()
    alice.client.delete(f"/api/tokens/{made['id']}")
    kinds = {(e.kind, e.action) for e in AuditEvent.objects.all()}
    assert {("user", "created"), ("user", "changed"), ("user", "groups_add"),
            ("token", "created"), ("token", "deleted")} <= kinds
    promoted = AuditEvent.objects.get(kind="user", action="changed")
    assert promoted.data["after"]["is_staff"] is True and promoted.actor_name == "admin"
    created = AuditEvent.objects.filter(kind="token", action="created",
                                        target__contains=made["id"]).get()
    assert created.actor_name == "alice" and made["token"] not in str(created.data)


def test_password_sign_ins_and_failures_are_recorded(db, django_user_model):
    django_user_model.objects.create_user("hana", password="right horse battery")
    browser = Client()
    assert browser.post("/login/", {"username": "hana", "password": "wrong"}).status_code == 200
    browser.post("/login/", {"username": "hana", "password": "right horse battery"})
    actions = list(AuditEvent.objects.filter(kind="signin").order_by("id")
                   .values_list("action", "actor_name"))
    assert actions == [("failed", ""), ("signed_in", "hana")]


def test_filters_narrow_the_log(admin, alice):
    record("config", "changed", target="sandbox", actor=alice.user)
    record("signin", "signed_in", target="user admin", actor=admin.user)
    assert [e["kind"] for e in admin.client.get("/api/audit?kind=signin").json()["events"]] \
        == ["signin"]
    assert [e["actor"] for e in admin.client.get("/api/audit?user=alice&kind=config").json()["events"]] \
        == ["alice"]
    page = admin.client.get("/api/audit?limit=1").json()
    rest = admin.client.get(f"/api/audit?limit=1&before={page['next_before']}").json()
    assert page["events"][0]["id"] > rest["events"][0]["id"]
    for bad in ("kind=nope", "limit=0", "since=yesterday", "chat=not-a-uuid"):
        assert admin.client.get(f"/api/audit?{bad}").status_code == 400, bad


def test_records_past_the_retention_are_purged(db, settings):
    settings.GATEWAY_AUDIT_RETENTION_DAYS = 30
    old = record("config", "changed", target="old")
    AuditEvent.objects.filter(pk=old.pk).update(at=timezone.now() - dt.timedelta(days=31))
    record("config", "changed", target="new")
    assert purge() == 1
    assert list(AuditEvent.objects.values_list("target", flat=True)) == ["new"]
    settings.GATEWAY_AUDIT_RETENTION_DAYS = 0
    AuditEvent.objects.update(at=timezone.now() - dt.timedelta(days=3000))
    assert purge() == 0
