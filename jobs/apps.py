from typing import Any

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Scheduled jobs"

    def ready(self) -> None:
        from chats.turns import register_unattended_check
        from gateway import hooks
        from jobs.store import unattended_tools

        register_unattended_check(unattended_tools)
        hooks.serve_loop_started.connect(start_scheduler, dispatch_uid="jobs.scheduler")


_running: set[Any] = set()


def start_scheduler(sender: Any, force_recovery: bool, **kwargs: Any) -> None:
    """On serve's event loop: settle runs that died with an earlier process, then poll."""
    import asyncio

    from jobs.scheduler import get_scheduler

    task = asyncio.get_event_loop().create_task(get_scheduler().run_forever(force_recovery))
    _running.add(task)  # the loop keeps only weak references to its tasks
