"""Scheduled jobs and their runs.

A job belongs to a user and keeps its own chat: each run appends its prompt there as a
turn, so context accumulates and every run reads like any chat. ``next_fire_at`` is the
one place the schedule's state lives; claiming a fire moves it forward in the same
database operation that creates the run, so a fire is run by exactly one process.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

SCHEDULE_KINDS = ("cron", "interval", "once")
RUN_STATUSES = ("running", "succeeded", "failed", "interrupted")


class Job(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="jobs")
    name = models.SlugField(max_length=64)
    # The schedule: a 5-field cron expression read in ``timezone``, every
    # ``interval_seconds``, or once at ``run_at``.
    schedule_kind = models.CharField(max_length=8, choices=[(k, k) for k in SCHEDULE_KINDS])
    cron = models.CharField(max_length=120, blank=True, default="")
    timezone = models.CharField(max_length=64, default="UTC")
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    run_at = models.DateTimeField(null=True, blank=True)
    prompt = models.TextField()
    enabled = models.BooleanField(default=True)
    # Tools this job's runs may call when the policy would ask (nobody is there to
    # answer); every other asked-about call is denied.
    allowed_tools = models.JSONField(default=list, blank=True)
    # Deleting the chat (DELETE /api/chats/<id>) deletes the job with it.
    chat = models.OneToOneField("chats.Chat", on_delete=models.CASCADE, related_name="job")
    destinations = models.ManyToManyField("notifications.Destination", blank=True,
                                          related_name="jobs")
    note = models.TextField(blank=True, default="")  # e.g. why an import left it paused
    next_fire_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"],
                                               name="unique_job_name")]
        indexes = [models.Index(fields=["enabled", "next_fire_at"])]

    def __str__(self) -> str:
        return self.name

    def schedule_dict(self) -> dict[str, Any]:
        if self.schedule_kind == "cron":
            return {"kind": "cron", "cron": self.cron, "timezone": self.timezone}
        if self.schedule_kind == "interval":
            return {"kind": "interval", "seconds": self.interval_seconds}
        return {"kind": "once", "at": self.run_at.isoformat() if self.run_at else None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.pk, "name": self.name, "schedule": self.schedule_dict(),
            "prompt": self.prompt, "enabled": self.enabled,
            "profile": self.chat.profile.name if self.chat.profile_id else None,
            "allowed_tools": list(self.allowed_tools),
            "destinations": sorted(d.name for d in self.destinations.all()),
            "chat_id": str(self.chat_id), "note": self.note,
            "next_fire_at": self.next_fire_at.isoformat() if self.next_fire_at else None,
            "created_at": self.created_at.isoformat(),
        }


class JobRun(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="runs")
    # The slot of the schedule this run is (null for "run now"); unique per job, so even
    # a claim that went wrong could not run one slot twice.
    scheduled_for = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=8, choices=[("schedule", "schedule"),
                                                      ("manual", "manual")])
    status = models.CharField(max_length=12, choices=[(s, s) for s in RUN_STATUSES],
                              default="running")
    # The process running it and until when its lease holds (renewed while it runs); a
    # run whose lease ran out died with its process.
    runner = models.CharField(max_length=100, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    message_id = models.BigIntegerField(null=True, blank=True)  # the prompt in the chat
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    usage = models.JSONField(null=True, blank=True)
    stop_reason = models.CharField(max_length=40, blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["job", "scheduled_for"],
                                               name="one_run_per_slot")]
        indexes = [models.Index(fields=["status", "lease_until"])]

    def __str__(self) -> str:
        return f"{self.job_id} run {self.pk}: {self.status}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.pk, "job": self.job_id, "trigger": self.trigger,
            "scheduled_for": self.scheduled_for.isoformat() if self.scheduled_for else None,
            "status": self.status, "runner": self.runner,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_ms": self.duration_ms, "usage": self.usage,
            "stop_reason": self.stop_reason, "error": self.error,
            "chat_id": str(self.job.chat_id), "message_id": self.message_id,
        }
