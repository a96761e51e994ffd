"""The core app: what every other app builds on (tokens and authentication, errors, API
helpers, rate limits, environment helpers, logging, the ``serve`` and ``issue_token``
commands). It imports no other app of the project; apps plug into it through the small
registries in ``gateway.hooks``."""

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from gateway import revocation  # noqa: F401 - connects its signal receivers
