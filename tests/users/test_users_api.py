"""``/api/users`` and ``/api/groups``: admins create, invite, promote, demote and
deactivate; nobody can lock the gateway out of its last admin."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client

User = get_user_model()


def test_only_admins_manage_users(alice):
    assert alice.client.get("/api/users").status_code == 403
    assert alice.client.post("/api/users", {"username": "x"}, format="json").status_code == 403
    assert alice.client.patch("/api/users/alice", {"is_staff": True},
                              format="json").status_code == 403
    assert alice.client.post("/api/users/alice/invite").status_code == 403
    assert not User.objects.get(username="alice").is_staff


def test_an_admin_creates_a_member_with_groups(admin):
    admin.client.post("/api/groups", {"name": "research"}, format="json")
    made = admin.client.post("/api/users", {"username": "ivan", "email": "i@example.org",
                                            "groups": ["research"]}, format="json")
    assert made.status_code == 201
    assert made.json() | {"date_joined": None} == {
        "username": "ivan", "email": "i@example.org", "is_staff": False, "is_active": True,
        "has_password": False, "groups": ["research"], "last_login": None,
        "date_joined": None}
    again = admin.client.post("/api/users", {"username": "ivan"}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "user_exists"
    bad = admin.client.post("/api/users", {"username": "no spaces"}, format="json")
    assert bad.status_code == 400 and "username" in bad.json()["fields"]
    unknown = admin.client.post("/api/users", {"username": "jo", "groups": ["nope"]},
                                format="json")
    assert unknown.status_code == 400 and not User.objects.filter(username="jo").exists()
    members = admin.client.get("/api/groups").json()["groups"]
    assert members == [{"name": "research", "members": ["ivan"]}]


def test_promote_and_demote(admin, alice):
    up = admin.client.patch("/api/users/alice", {"is_staff": True}, format="json")
    assert up.json()["is_staff"] is True and alice.client.get("/api/users").status_code == 200
    down = admin.client.patch("/api/users/alice", {"is_staff": False}, format="json")
    assert down.json()["is_staff"] is False
    assert alice.client.get("/api/users").status_code == 403


def test_an_admin_cannot_demote_or_deactivate_himself(admin):
    for change in ({"is_staff": False}, {"is_active": False}):
        response = admin.client.patch("/api/users/admin", change, format="json")
        assert response.status_code == 409 and response.json()["error"] == "would_lock_out"
    assert User.objects.get(username="admin").is_staff


def test_deactivating_a_member_shuts_his_tokens_out(admin, alice):
    assert alice.client.get("/api/chats").status_code == 200
    admin.client.patch("/api/users/alice", {"is_active": False}, format="json")
    assert alice.client.get("/api/chats").status_code == 401
    assert admin.client.post("/api/users/alice/invite").status_code == 409
    admin.client.patch("/api/users/alice", {"is_active": True}, format="json")
    assert alice.client.get("/api/chats").status_code == 200


def test_an_invite_link_sets_a_password_once(admin, db):
    admin.client.post("/api/users", {"username": "kim"}, format="json")
    link = admin.client.post("/api/users/kim/invite").json()["url"]
    path = "/" + link.split("/", 3)[3]
    browser = Client()
    form = browser.get(path, follow=True)
    assert form.context["validlink"] is True
    done = browser.post(form.redirect_chain[-1][0], {"new_password1": "kim's long secret 7",
                                                     "new_password2": "kim's long secret 7"})
    assert done.status_code == 302 and done["Location"] == "/"
    assert User.objects.get(username="kim").check_password("kim's long secret 7")
    assert browser.session.get("_auth_user_id") == str(User.objects.get(username="kim").pk)
    again = Client().get(path, follow=True)
    assert again.context["validlink"] is False


def test_a_forged_or_foreign_invite_token_is_refused(admin, db):
    admin.client.post("/api/users", {"username": "lee"}, format="json")
    link = admin.client.post("/api/users/lee/invite").json()["url"]
    uid, token = link.rstrip("/").split("/")[-2:]
    admin_uid = link.replace(uid, "MQ").split("/", 3)[3]  # user 1 with lee's token
    assert Client().get("/" + admin_uid, follow=True).context["validlink"] is False
    forged = f"/invite/{uid}/{token[:-3]}abc/"
    assert Client().get(forged, follow=True).context["validlink"] is False


def test_groups_are_created_and_deleted(admin):
    assert admin.client.post("/api/groups", {"name": "ops"}, format="json").status_code == 201
    assert admin.client.post("/api/groups", {"name": "ops"}, format="json").status_code == 409
    assert admin.client.delete("/api/groups/ops").status_code == 204
    assert admin.client.delete("/api/groups/ops").status_code == 404


def test_the_django_admin_makes_invite_links_and_shows_the_audit_log(admin, alice):
    browser = Client()
    browser.force_login(admin.user)
    assert browser.get("/admin/auth/user/").status_code == 200
    done = browser.post("/admin/auth/user/", {"action": "make_invite_links",
                                              "_selected_action": [alice.user.pk]},
                        follow=True)
    shown = [str(m) for m in done.context["messages"]]
    assert len(shown) == 1 and "/invite/" in shown[0] and shown[0].startswith("alice:")
    log = browser.get("/admin/audit/auditevent/")
    assert log.status_code == 200 and b"invited" in log.content
    assert browser.get("/admin/audit/auditevent/add/").status_code == 403
