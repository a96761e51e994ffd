from typing import Any

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from gateway import hooks

        from django.db.models.signals import post_delete, post_save

        from notifications.models import ChatNotify
        from notifications.services import NOTIFY_VERSION, on_turn_ended

        hooks.serve_loop_started.connect(start_sender, dispatch_uid="notifications.sender")
        # "Notify me when this turn ends": a delivery to the chat's chosen destination.
        hooks.turn_ended.connect(on_turn_ended, dispatch_uid="notifications.turn_ended")
        for signal in (post_save, post_delete):  # which chats notify: every process re-reads
            signal.connect(NOTIFY_VERSION.bump, sender=ChatNotify, weak=False,
                           dispatch_uid=f"notifications.chat_notify.{signal}")


def start_sender(sender: Any, **kwargs: Any) -> None:
    """On serve's event loop: the loop that sends queued deliveries."""
    import asyncio

    from notifications.outbox import run_forever

    task = asyncio.get_event_loop().create_task(run_forever())
    _running.add(task)  # the loop keeps only weak references to its tasks


_running: set[Any] = set()
