"""Database work of the scheduler, in small sync functions (call them through
``database_sync_to_async``): claiming due fires, leases of runs, finishing, recovery.

Claiming is what makes a fire run exactly once however many processes poll: on
PostgreSQL the due jobs are locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` (a process
skips the rows another is claiming instead of waiting for them); on SQLite, which has one
writer, a conditional UPDATE of ``next_fire_at`` from the seen value to the next one
succeeds for one process only. Either way the run is created in the same transaction that
moves ``next_fire_at``, and ``(job, scheduled_for)`` is unique besides.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jobs.models import Job, JobRun
from jobs.schedule import following_fire
from chats.models import Chat, Message
from notifications import outbox

BATCH = 20
INTERRUPTED = "The server running this job stopped; the run was interrupted."


def _until(lease: float) -> dt.datetime:
    return timezone.now() + dt.timedelta(seconds=lease)


def _advance(job: Job, now: dt.datetime) -> dt.datetime | None:
    return following_fire(job.schedule_kind, cron=job.cron, tz=job.timezone,
                          interval=job.interval_seconds, now=now)


def _new_run(job: Job, slot: dt.datetime | None, trigger: str, runner: str,
             lease: float) -> int:
    return JobRun.objects.create(job=job, scheduled_for=slot, trigger=trigger,
                                 runner=runner, lease_until=_until(lease)).pk


def claim_due(runner: str, lease: float) -> list[int]:
    """Claim the fires due now for ``runner``; returns the ids of the runs created."""
    if connection.vendor == "postgresql":
        return _claim_locked(runner, lease)
    return _claim_conditional(runner, lease)


@transaction.atomic
def _claim_locked(runner: str, lease: float) -> list[int]:
    now = timezone.now()
    due = Job.objects.select_for_update(skip_locked=True) \
        .filter(enabled=True, next_fire_at__lte=now).order_by("next_fire_at")[:BATCH]
    runs = []
    for job in due:
        slot = job.next_fire_at
        job.next_fire_at = _advance(job, now)
        job.save(update_fields=["next_fire_at"])
        runs.append(_new_run(job, slot, "schedule", runner, lease))
    return runs


def _claim_conditional(runner: str, lease: float) -> list[int]:
    now = timezone.now()
    runs = []
    for job in Job.objects.filter(enabled=True, next_fire_at__lte=now) \
            .order_by("next_fire_at")[:BATCH]:
        with transaction.atomic():
            if Job.objects.filter(pk=job.pk, enabled=True, next_fire_at=job.next_fire_at) \
                    .update(next_fire_at=_advance(job, now)):
                runs.append(_new_run(job, job.next_fire_at, "schedule", runner, lease))
    return runs


def start_manual(job: Job, runner: str, lease: float) -> JobRun:
    """A "run now" run, outside the schedule (which it does not move)."""
    return JobRun.objects.get(pk=_new_run(job, None, "manual", runner, lease))


@dataclass
class RunInfo:
    run_id: int
    job_name: str
    chat_id: str
    prompt: str


def run_info(run_id: int) -> RunInfo:
    run = JobRun.objects.select_related("job").get(pk=run_id)
    return RunInfo(run_id, run.job.name, str(run.job.chat_id), run.job.prompt)


def set_message(run_id: int, message_id: int) -> None:
    JobRun.objects.filter(pk=run_id).update(message_id=message_id)


def renew(run_ids: list[int], runner: str, lease: float) -> None:
    JobRun.objects.filter(pk__in=run_ids, runner=runner, status="running") \
        .update(lease_until=_until(lease))


# --- how the turn went ------------------------------------------------------------------

@dataclass
class Outcome:
    done: bool
    status: str = ""
    text: str = ""
    usage: dict[str, int] | None = None
    stop_reason: str = ""


def turn_outcome(chat_id: str, message_id: int) -> Outcome:
    """Read from the chat whether the turn of ``message_id`` ended, and how. It ended when
    its message started and the chat's turn lock is free, or a later message started."""
    prompt = Message.objects.filter(pk=message_id).values("position", "status").first()
    if prompt is None:
        return Outcome(True, "failed", stop_reason="deleted")
    if prompt["status"] == "queued":
        return Outcome(False)
    later = Message.objects.filter(chat_id=chat_id, role="user",
                                   position__gt=prompt["position"]).order_by("position") \
        .values_list("position", flat=True).first()
    if later is None and Chat.objects.filter(pk=chat_id, turn_owner__isnull=False).exists():
        return Outcome(False)
    replies = Message.objects.filter(chat_id=chat_id, role="assistant",
                                     position__gt=prompt["position"])
    if later is not None:
        replies = replies.filter(position__lt=later)
    return _summarise(list(replies.order_by("position")))


def _summarise(replies: list[Message]) -> Outcome:
    usage: dict[str, int] = {}
    for reply in replies:
        for key, value in (reply.usage or {}).items():
            if isinstance(value, int):
                usage[key] = usage.get(key, 0) + value
    if any(r.status == "interrupted" for r in replies):
        return Outcome(True, "interrupted", INTERRUPTED, usage, "interrupted")
    last = replies[-1] if replies else None
    if last is None or last.status != "done":
        return Outcome(True, "failed", "The run produced no answer; see its chat.", usage,
                       "error")
    text = last.content if isinstance(last.content, str) else _text_of(last.content)
    return Outcome(True, "succeeded", text, usage, "end_turn")


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return "" if content is None else str(content)


# --- the end of a run ---------------------------------------------------------------

@transaction.atomic
def finish(run_id: int, runner: str, outcome: Outcome, error: str = "") -> None:
    """Record how the run ended and queue its deliveries (in one transaction, so a
    finished run is always announced)."""
    now = timezone.now()
    run = JobRun.objects.select_for_update().select_related("job").filter(pk=run_id).first()
    if run is None or run.status != "running" or run.runner != runner:
        return  # the job was deleted, or the run recovered as interrupted meanwhile
    run.status, run.finished_at = outcome.status, now
    run.duration_ms = int((now - run.started_at).total_seconds() * 1000)
    run.usage, run.stop_reason, run.error = outcome.usage or None, outcome.stop_reason, error
    run.lease_until = None
    run.save()
    _announce(run, outcome.text or error)


def _announce(run: JobRun, text: str) -> None:
    job = run.job
    outbox.enqueue(job.destinations.all(), source=f"job_run:{run.pk}", chat_id=job.chat_id,
                   title=f"Job {job.name}: {run.status}", text=text or run.status,
                   payload={"event": "job.run.finished", "job": job.name,
                            "run_id": run.pk, "status": run.status,
                            "chat_id": str(job.chat_id)})


def stale_runs(force: bool) -> list[int]:
    """Runs whose process is gone: lease ran out, or (``force``: the only process is
    starting) any run still marked running."""
    rows = JobRun.objects.filter(status="running")
    if not force:
        rows = rows.filter(lease_until__lt=timezone.now())
    return list(rows.values_list("pk", flat=True))


@transaction.atomic
def settle_dead_run(run_id: int, force: bool) -> bool:
    """Mark a run of a dead process interrupted (its turn is settled by the chats app,
    like any crashed turn). False when its runner renewed it meanwhile."""
    run = JobRun.objects.select_for_update().select_related("job").filter(pk=run_id).first()
    if run is None or run.status != "running":
        return False
    if not force and run.lease_until and run.lease_until >= timezone.now():
        return False
    now = timezone.now()
    run.status, run.finished_at, run.error = "interrupted", now, INTERRUPTED
    run.duration_ms = int((now - run.started_at).total_seconds() * 1000)
    run.stop_reason, run.lease_until = "interrupted", None
    run.save()
    _announce(run, INTERRUPTED)
    return True


def unattended_tools(chat_id: str) -> set[str] | None:
    """The chats app's unattended check: while a job's run is running in its chat, the
    tools the job may run unasked (none when admins forbid it)."""
    job = Job.objects.filter(chat_id=chat_id, runs__status="running").first()
    if job is None:
        return None
    return set(job.allowed_tools) if settings.GATEWAY_JOBS_ALLOW_UNASKED_TOOLS else set()
