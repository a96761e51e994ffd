"""The jobs REST API: CRUD, validation, ownership, runs."""

from __future__ import annotations

import datetime as dt

import pytest

from jobs.models import Job, JobRun

CRON = {"kind": "cron", "cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}


def new_job(actor, **fields):
    body = {"name": "standup", "prompt": "Write the standup.", "schedule": CRON, **fields}
    return actor.client.post("/api/jobs", body, format="json")


def test_it_creates_a_job_with_its_own_chat_and_next_fire(alice, profile):
    response = new_job(alice, profile="fake", allowed_tools=["read"])
    assert response.status_code == 201, response.json()
    job = response.json()
    assert job["schedule"] == CRON and job["profile"] == "fake"
    assert job["allowed_tools"] == ["read"] and job["enabled"] is True
    fire = dt.datetime.fromisoformat(job["next_fire_at"]).astimezone(
        dt.timezone(dt.timedelta(hours=1)))  # Paris in winter (the fire is in Dec or later)
    assert fire.weekday() < 5 and (fire.hour, fire.minute) in ((9, 0), (10, 0))
    chat = alice.client.get(f"/api/chats/{job['chat_id']}")
    assert chat.status_code == 200 and chat.json()["title"] == "Job: standup"


def test_it_lists_reads_changes_and_deletes(alice):
    job = new_job(alice).json()
    assert [j["name"] for j in alice.client.get("/api/jobs").json()["jobs"]] == ["standup"]
    changed = alice.client.patch(f"/api/jobs/{job['id']}", {
        "enabled": False, "schedule": {"kind": "interval", "seconds": 3600}}, format="json")
    assert changed.status_code == 200
    assert changed.json()["enabled"] is False
    assert changed.json()["schedule"] == {"kind": "interval", "seconds": 3600}
    assert alice.client.delete(f"/api/jobs/{job['id']}").json() == {"deleted": True}
    assert not Job.objects.exists()
    assert alice.client.get(f"/api/chats/{job['chat_id']}").status_code == 404


def test_resuming_a_paused_job_skips_the_slots_it_missed(alice):
    job = new_job(alice, schedule={"kind": "interval", "seconds": 60}).json()
    Job.objects.filter(pk=job["id"]).update(
        enabled=False, next_fire_at=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    resumed = alice.client.patch(f"/api/jobs/{job['id']}", {"enabled": True}, format="json")
    assert dt.datetime.fromisoformat(resumed.json()["next_fire_at"]) > \
        dt.datetime.now(dt.timezone.utc)


@pytest.mark.parametrize("schedule, field", [
    ({"kind": "cron", "cron": "61 * * * *"}, "cron"),
    ({"kind": "cron", "cron": "* * * * * *"}, "cron"),
    ({"kind": "cron", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"kind": "interval", "seconds": 5}, "seconds"),
    ({"kind": "once"}, "at"),
    ({"kind": "hourly"}, "kind"),
    ({"kind": "cron", "cron": "* * * * *", "extra": 1}, "extra"),
])
def test_it_refuses_a_bad_schedule_with_the_field(alice, schedule, field):
    response = new_job(alice, schedule=schedule)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] and field in str(body["fields"])
    assert not Job.objects.exists()


def test_names_are_unique_per_owner(alice, bob):
    assert new_job(alice).status_code == 201
    again = new_job(alice)
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    assert new_job(bob).status_code == 201


def test_unknown_profile_and_destination_are_refused(alice):
    assert new_job(alice, profile="nope").json()["fields"] == {
        "profile": "No profile named 'nope'; GET /api/profiles lists them."}
    assert "destinations" in new_job(alice, destinations=["nowhere"]).json()["fields"]
    assert not Job.objects.exists()


def test_admins_may_forbid_tools_run_unasked(alice, settings):
    settings.GATEWAY_JOBS_ALLOW_UNASKED_TOOLS = False
    response = new_job(alice, allowed_tools=["bash"])
    assert response.status_code == 403 and "allowed_tools" in response.json()["fields"]
    assert new_job(alice).status_code == 201


def test_bob_should_have_no_access_to_alices_job(alice, bob):
    job = new_job(alice).json()
    for method, path in [("get", ""), ("patch", ""), ("delete", ""), ("post", "/run"),
                         ("get", "/runs")]:
        response = getattr(bob.client, method)(f"/api/jobs/{job['id']}{path}", {},
                                               format="json")
        assert response.status_code == 404, (method, path)
    assert bob.client.get("/api/jobs").json() == {"jobs": []}
    assert Job.objects.filter(pk=job["id"], enabled=True).exists()


def test_runs_are_listed_newest_first_with_their_chat(alice):
    job = new_job(alice).json()
    row = Job.objects.get(pk=job["id"])
    JobRun.objects.create(job=row, trigger="manual", status="succeeded")
    JobRun.objects.create(job=row, trigger="manual", status="failed", error="boom")
    runs = alice.client.get(f"/api/jobs/{job['id']}/runs").json()["runs"]
    assert [r["status"] for r in runs] == ["failed", "succeeded"]
    assert runs[0]["chat_id"] == job["chat_id"] and runs[0]["error"] == "boom"
    assert alice.client.get(f"/api/jobs/{job['id']}/runs?limit=0").status_code == 400


def test_anonymous_requests_are_refused(anon):
    assert anon.get("/api/jobs").status_code == 401


def test_a_patch_replaces_the_schedule_whole(alice):
    job = new_job(alice).json()
    partial = alice.client.patch(f"/api/jobs/{job['id']}", {"schedule": {"cron": "* * * * *"}},
                                 format="json")
    assert partial.status_code == 400 and "kind" in str(partial.json()["fields"])
    whole = alice.client.patch(f"/api/jobs/{job['id']}", {
        "schedule": {"kind": "cron", "cron": "*/5 * * * *"}}, format="json")
    assert whole.json()["schedule"] == {"kind": "cron", "cron": "*/5 * * * *",
                                        "timezone": "UTC"}
