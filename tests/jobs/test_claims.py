"""Claiming fires in the database: once per slot, missed slots once, dead runs settled."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from chats.models import Chat
from jobs import store
from jobs.models import Job, JobRun


def due_job(owner, **fields) -> Job:
    chat = Chat.objects.create(owner=owner)
    values = {"name": "j", "schedule_kind": "cron", "cron": "* * * * *", "prompt": "p",
              "next_fire_at": timezone.now() - dt.timedelta(minutes=30), **fields}
    return Job.objects.create(owner=owner, chat=chat, **values)


def test_a_due_fire_is_claimed_by_one_caller_only(alice):
    job = due_job(alice.user)
    first = store.claim_due("proc-a", 60)
    second = store.claim_due("proc-b", 60)
    assert len(first) == 1 and second == []
    run = JobRun.objects.get(pk=first[0])
    assert run.runner == "proc-a" and run.status == "running"
    job.refresh_from_db()
    assert job.next_fire_at > timezone.now()  # half an hour of missed slots: one run


def test_paused_and_future_jobs_are_not_claimed(alice):
    due_job(alice.user, name="paused", enabled=False)
    due_job(alice.user, name="later", next_fire_at=timezone.now() + dt.timedelta(hours=1))
    assert store.claim_due("proc", 60) == []


def test_a_one_off_job_fires_once(alice):
    job = due_job(alice.user, schedule_kind="once", cron="",
                  run_at=timezone.now() - dt.timedelta(seconds=1))
    assert len(store.claim_due("proc", 60)) == 1
    job.refresh_from_db()
    assert job.next_fire_at is None and store.claim_due("proc", 60) == []


def test_a_run_whose_lease_ran_out_is_settled_as_interrupted(alice):
    due_job(alice.user)
    run_id = store.claim_due("dead-proc", 60)[0]
    assert store.stale_runs(force=False) == []
    JobRun.objects.filter(pk=run_id).update(lease_until=timezone.now() - dt.timedelta(1))
    assert store.stale_runs(force=False) == [run_id]
    assert store.settle_dead_run(run_id, force=False) is True
    run = JobRun.objects.get(pk=run_id)
    assert run.status == "interrupted" and "stopped" in run.error
    # The dead runner cannot overwrite the record later.
    store.finish(run_id, "dead-proc", store.Outcome(True, "succeeded", "late"))
    assert JobRun.objects.get(pk=run_id).status == "interrupted"


def test_tools_are_unattended_only_while_a_run_runs(alice, settings):
    job = due_job(alice.user, allowed_tools=["bash"])
    assert store.unattended_tools(str(job.chat_id)) is None
    store.claim_due("proc", 60)
    assert store.unattended_tools(str(job.chat_id)) == {"bash"}
    settings.GATEWAY_JOBS_ALLOW_UNASKED_TOOLS = False
    assert store.unattended_tools(str(job.chat_id)) == set()
