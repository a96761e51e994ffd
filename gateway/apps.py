"""The core app: what every other app builds on (tokens and authentication, errors, API
helpers, rate limits, environment helpers, logging, the ``serve`` and ``issue_token``
commands). It imports no other app of the project; apps plug into it through the small
registries in ``gateway.hooks``."""

from typing import Any

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from gateway import auth, revocation  # noqa: F401 - connects its signal receivers
        from gateway.models import ApiToken

        # The checked-token cache of every process (gateway.auth) starts over when a
        # token or a user changes; a new token, or a login's last_login, changes nothing
        # it holds.
        def changed(sender: Any, created: bool = False, update_fields: Any = None,
                    **kwargs: Any) -> None:
            if not created and set(update_fields or ()) != {"last_login"}:
                auth.forget()

        for model in (ApiToken, get_user_model()):
            post_save.connect(changed, sender=model, weak=False,
                              dispatch_uid=f"gateway.auth.saved.{model._meta.label}")
            post_delete.connect(auth.forget, sender=model, weak=False,
                                dispatch_uid=f"gateway.auth.deleted.{model._meta.label}")
