from django.contrib import admin

from jobs.models import Job, JobRun


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "schedule_kind", "cron", "enabled", "next_fire_at")
    list_filter = ("enabled", "schedule_kind")
    raw_id_fields = ("chat",)


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("job", "trigger", "scheduled_for", "status", "runner", "duration_ms")
    list_filter = ("status", "trigger")
