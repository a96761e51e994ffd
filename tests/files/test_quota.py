"""Per-user workspace quotas: admins set them (API and Django admin), every other user
keeps the default, uploads are held to the user's own quota, and changes are audited."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin as django_admin
from django.test import Client

from agents import fs
from audit.models import AuditEvent
from chats.store import workspace_for
from files.models import WorkspaceQuota


def put(actor: Any, path: str, data: bytes) -> Any:
    return actor.client.put(f"/api/files/content?path={path}", data,
                            content_type="application/octet-stream")


def set_quota(actor: Any, user: str, body: dict[str, Any]) -> Any:
    return actor.client.put(f"/api/files/quota?user={user}", body, format="json")


def test_an_admin_sets_a_users_quota_and_only_that_user_is_held_to_it(
        admin: Any, alice: Any, bob: Any, settings: Any) -> None:
    settings.GATEWAY_FILES_QUOTA_BYTES = 1000
    settings.GATEWAY_FILES_QUOTA_FILES = 50

    response = set_quota(admin, "alice", {"quota_bytes": 10, "quota_files": 3})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user"] == "alice"
    assert (body["quota_bytes"], body["quota_files"]) == (10, 3)
    assert body["own"] == {"quota_bytes": 10, "quota_files": 3}
    assert body["default"] == {"quota_bytes": 1000, "quota_files": 50}
    mine = alice.client.get("/api/files/quota").json()
    assert (mine["quota_bytes"], mine["used_bytes"]) == (10, 0)
    assert alice.client.get("/api/files").json()["quota"]["quota_bytes"] == 10
    refused = put(alice, "big.txt", b"x" * 11)
    assert refused.status_code == 409 and refused.json()["error"] == "quota_exceeded"
    assert "quota is 10 bytes" in refused.json()["message"]
    assert refused.json()["fields"]["quota_bytes"] == 10
    assert not (workspace_for(alice.user) / "big.txt").exists()
    # bob keeps the default
    assert put(bob, "big.txt", b"x" * 11).status_code == 201
    assert bob.client.get("/api/files/quota").json()["own"] == {"quota_bytes": None,
                                                                "quota_files": None}


def test_a_null_goes_back_to_the_default_and_a_partial_change_keeps_the_rest(
        admin: Any, alice: Any, settings: Any) -> None:
    settings.GATEWAY_FILES_QUOTA_BYTES = 1000
    set_quota(admin, "alice", {"quota_bytes": 10, "quota_files": 3})

    files_only = set_quota(admin, str(alice.user.pk), {"quota_files": 7}).json()
    back = set_quota(admin, "alice", {"quota_bytes": None}).json()

    assert files_only["own"] == {"quota_bytes": 10, "quota_files": 7}
    assert back["own"] == {"quota_bytes": None, "quota_files": 7}
    assert (back["quota_bytes"], back["quota_files"]) == (1000, 7)
    assert put(alice, "a.txt", b"x" * 11).status_code == 201


def test_only_admins_set_quotas_and_members_see_only_their_own(
        admin: Any, alice: Any, bob: Any) -> None:
    assert set_quota(alice, "alice", {"quota_bytes": 10 ** 12}).status_code == 403
    assert alice.client.put("/api/files/quota", {"quota_bytes": 1},
                            format="json").status_code == 403
    assert bob.client.get("/api/files/quota?user=alice").status_code == 403
    assert admin.client.get("/api/files/quota?user=alice").json()["user"] == "alice"
    assert set_quota(admin, "ghost", {"quota_bytes": 1}).status_code == 404
    assert not WorkspaceQuota.objects.exists()


def test_bad_quota_values_get_the_error_body(admin: Any, alice: Any) -> None:
    for bad in ({"quota_bytes": -1}, {"quota_files": "many"}, {"quota_bytes": 1.5},
                {"quota_bytes": 2 ** 63}, {"quota": 1}):
        response = set_quota(admin, "alice", bad)
        assert response.status_code == 400, bad
        assert response.json()["error"] == "invalid_request"
    assert not WorkspaceQuota.objects.exists()


def test_a_quota_change_is_audited(admin: Any, alice: Any) -> None:
    set_quota(admin, "alice", {"quota_bytes": 10})
    set_quota(admin, "alice", {"quota_bytes": 20})

    events = list(AuditEvent.objects.filter(kind="config", target__startswith="workspace_quota")
                  .order_by("id"))
    assert [e.action for e in events] == ["created", "changed"]
    assert events[1].actor_name == "admin" and "alice" in events[1].target
    assert events[1].data["before"]["quota_bytes"] == 10
    assert events[1].data["after"]["quota_bytes"] == 20


def test_the_django_admin_edits_quotas(admin: Any, alice: Any) -> None:
    assert WorkspaceQuota in django_admin.site._registry
    browser = Client()
    browser.force_login(admin.user)
    page = browser.get("/admin/files/workspacequota/add/")
    assert page.status_code == 200
    created = browser.post("/admin/files/workspacequota/add/", {
        "user": alice.user.pk, "quota_bytes": "5", "quota_files": ""})
    assert created.status_code == 302, created.content[:2000]
    assert alice.client.get("/api/files/quota").json()["quota_bytes"] == 5


def test_a_write_through_a_link_inside_gives_the_targets_bytes_back(tmp_path: Any) -> None:
    """``write_bytes`` writes through a link that stays inside (the target is replaced),
    so the quota check counts the target as replaced, not as kept."""
    (tmp_path / "target.txt").write_bytes(b"t" * 90)
    (tmp_path / "link.txt").symlink_to("target.txt")
    limit = fs.Quota(max_bytes=100, max_files=10)
    with fs.Workspace(tmp_path) as ws:
        assert ws.check_quota(limit, 95, 1, replacing="link.txt").bytes == 90
        with pytest.raises(fs.QuotaExceeded) as refused:
            ws.check_quota(limit, 11, 1, replacing="new.txt")
    assert refused.value.code == "quota_exceeded"
    assert "would hold 101 bytes in 2 files" in refused.value.message

