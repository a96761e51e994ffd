from typing import Any

from django.apps import AppConfig


class ChatsConfig(AppConfig):
    name = "chats"
    verbose_name = "Chats"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from agents import toolbox
        from chats import config
        from chats.health import announce_tool_mode, health_part
        from gateway import hooks

        # Every process reloads its cached configuration after a change (chats.config).
        for model in config.CACHED_MODELS:
            for signal in (post_save, post_delete):
                signal.connect(config.bump, sender=model,
                               dispatch_uid=f"chats.config.{model.__name__}.{signal}")

        hooks.add_health_part(health_part)
        hooks.serve_prepare.connect(announce_tool_mode, dispatch_uid="chats.tool_mode")
        hooks.provide_tool_names(toolbox.names)
        hooks.serve_loop_started.connect(start_turn_manager, dispatch_uid="chats.startup")


def start_turn_manager(sender: Any, force_recovery: bool, **kwargs: Any) -> None:
    """On serve's event loop: settle turns that died with an earlier process, start the
    sweeper, run waiting queues."""
    import asyncio

    from chats.turns import get_manager

    asyncio.get_event_loop().create_task(get_manager().startup(force=force_recovery))
