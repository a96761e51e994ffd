"""Jobs: the one access check, creation, change and deletion."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from chats import services as chat_services
from chats.models import Chat
from gateway.errors import GatewayError
from jobs.models import Job
from jobs.schedule import first_fire
from notifications.services import destinations_named
from profiles.views import profile_by_name


def get_job_for(user: AbstractBaseUser, job_id: Any) -> Job:
    """The user's own job; anyone else's is "not found", like a job that does not exist."""
    try:
        return Job.objects.select_related("chat__profile").get(pk=int(job_id), owner=user)
    except (ValueError, TypeError, Job.DoesNotExist):
        raise GatewayError("not_found", "No such job.", 404) from None


def _check_allowed_tools(tools: list[str]) -> None:
    if tools and not settings.GATEWAY_JOBS_ALLOW_UNASKED_TOOLS:
        raise GatewayError("forbidden", "An admin does not allow jobs to run tools "
                           "unasked (GATEWAY_JOBS_ALLOW_UNASKED_TOOLS is off).", 403,
                           {"allowed_tools": "Not allowed on this server."})


def _set_schedule(job: Job, schedule: dict[str, Any]) -> None:
    job.schedule_kind = schedule["kind"]
    job.cron = schedule.get("cron", "") if job.schedule_kind == "cron" else ""
    job.timezone = schedule.get("timezone", "UTC")
    job.interval_seconds = schedule.get("seconds")
    job.run_at = schedule.get("at")


def reschedule(job: Job) -> None:
    """Next fire from now: after a change of schedule or a pause, missed slots are gone."""
    job.next_fire_at = first_fire(job.schedule_kind, cron=job.cron, tz=job.timezone,
                                  interval=job.interval_seconds, run_at=job.run_at,
                                  now=timezone.now())


def _apply(job: Job, user: AbstractBaseUser, body: dict[str, Any]) -> None:
    if "allowed_tools" in body:
        _check_allowed_tools(body["allowed_tools"])
        job.allowed_tools = sorted(set(body["allowed_tools"]))
    for field in ("name", "prompt", "enabled"):
        if field in body:
            setattr(job, field, body[field])
    if "schedule" in body:
        _set_schedule(job, body["schedule"])
    if "profile" in body:
        job.chat.profile = (profile_by_name(body["profile"], in_body=True, field="profile")
                            if body["profile"] else None)


def _save(job: Job, user: AbstractBaseUser, body: dict[str, Any]) -> Job:
    destinations = (destinations_named(user, body["destinations"])
                    if "destinations" in body else None)
    try:
        with transaction.atomic():
            job.chat.save()
            job.chat_id = job.chat.pk
            job.save()
            if destinations is not None:
                job.destinations.set(destinations)
    except IntegrityError:
        raise GatewayError("conflict", f"A job named {job.name!r} exists.", 409,
                           {"name": "Already used."}) from None
    return job


def create(user: AbstractBaseUser, body: dict[str, Any], chat: Chat | None = None) -> Job:
    """A job writing to ``chat`` (an importer's existing chat), else to a new one."""
    job = Job(owner=user)
    job.chat = chat or Chat(owner=user, title=f"Job: {body['name']}")
    _apply(job, user, body)
    reschedule(job)
    return _save(job, user, body)


def update(job: Job, user: AbstractBaseUser, body: dict[str, Any]) -> Job:
    was_enabled = job.enabled
    _apply(job, user, body)
    if "schedule" in body or (job.enabled and not was_enabled):
        reschedule(job)
    return _save(job, user, body)


def delete(job: Job) -> None:
    """The job, its runs and its chat (a running turn of it is stopped first)."""
    chat = job.chat
    chat_services.stop_turn(chat)
    with transaction.atomic():
        job.delete()
        chat.delete()
