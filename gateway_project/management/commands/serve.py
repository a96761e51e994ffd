"""``manage.py serve``: migrate, make sure an admin can get in, run daphne."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from gateway_project.auth import create_token
from gateway_project.models import ApiToken


# Socket messages up to this many times GATEWAY_MAX_FRAME_BYTES are read and refused with
# agent.error; larger ones close the connection (1009) before they are buffered whole.
WS_HARD_LIMIT_FACTOR = 4


class Command(BaseCommand):
    help = "Apply migrations, ensure an admin user and token exist, and run the server."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-migrate", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        if not opts["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        self.ensure_admin()
        self.ensure_env_profile()
        self.schedule_startup()
        self.stdout.write(f"Gateway {settings.VERSION} on http://{opts['host']}:{opts['port']}"
                          f" (data: {settings.GATEWAY_DATA_DIR})")
        self.stdout.flush()
        from daphne.cli import CommandLineInterface

        # daphne's own limit (1 MiB by default) would drop the socket at ours already.
        hard_limit = str(settings.GATEWAY_MAX_FRAME_BYTES * WS_HARD_LIMIT_FACTOR)
        CommandLineInterface().run([
            "-b", opts["host"], "-p", str(opts["port"]),
            *(["--proxy-headers"] if settings.GATEWAY_TRUST_PROXY_HEADERS else []),
            "--access-log", os.devnull if not settings.DEBUG else "-",
            "--websocket-max-message-size", hard_limit, "--websocket-max-frame-size", hard_limit,
            "gateway_project.asgi:application",
        ])

    def ensure_admin(self) -> None:
        users = get_user_model()
        admin = users.objects.filter(is_staff=True).order_by("pk").first()
        if admin is None:
            admin = users.objects.create(username="admin", is_staff=True, is_superuser=True)
            admin.set_unusable_password()
            admin.save()
        if ApiToken.objects.filter(user=admin).exists():
            self.stdout.write(f"Admin user {admin.username!r} exists. A new token: "
                              f"python manage.py issue_token {admin.username} --admin")
            return
        _, token = create_token(admin, "serve-bootstrap")
        self.stdout.write(f"Admin user {admin.username!r}; its API token (shown once, keep "
                          f"it):\n{token}\nA new one later: python manage.py issue_token "
                          f"{admin.username} --admin")

    def ensure_env_profile(self) -> None:
        """OPENAI_API_KEY at start-up and no profile yet: create a default from it."""
        from profiles.models import ModelProfile

        key = os.environ.get("OPENAI_API_KEY")
        if not key or ModelProfile.objects.exists():
            return
        profile = ModelProfile(name="openai", provider="openai",
                               model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
                               base_url=os.environ.get("OPENAI_BASE_URL", ""))
        profile.set_api_key(key)
        profile.save()
        profile.make_default()
        self.stdout.write(f"Created the default profile from OPENAI_API_KEY ({profile.model}).")

    def schedule_startup(self) -> None:
        """Once daphne's event loop runs: settle turns that died with an earlier process,
        start the sweeper, run waiting queues. On the embedded default this is the only
        process, so a turn marked running died with the previous one: settle it at once
        instead of waiting for its lease."""
        import asyncio

        import daphne.server  # noqa: F401 - installs the asyncio reactor daphne runs on
        from twisted.internet import reactor

        from chats.turns import get_manager

        def start() -> None:
            asyncio.get_event_loop().create_task(
                get_manager().startup(force=not settings.REDIS_URL))

        reactor.callWhenRunning(start)
