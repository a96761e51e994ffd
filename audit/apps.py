from typing import Any

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from audit import recorders
        from gateway import hooks

        recorders.connect()
        hooks.serve_prepare.connect(purge_on_start, dispatch_uid="audit.purge")


def purge_on_start(sender: Any, **kwargs: Any) -> str | None:
    """Apply the retention setting each time a server starts."""
    from audit.services import purge

    removed = purge()
    return f"Removed {removed} audit record(s) past the retention period." if removed else None
