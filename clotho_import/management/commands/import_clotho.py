"""``manage.py import_clotho <dir> --user <name>``: move in from a Clotho home folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clotho_import.importer import ClothoImport
from gateway.errors import GatewayError
from jobs.schedule import timezone_error


def host_timezone() -> str:
    """The host's zone name: Clotho read job schedules in the host's local time."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name and Path("/etc/timezone").is_file():
        name = Path("/etc/timezone").read_text().strip()
    return name if name and not timezone_error(name) else "UTC"


class Command(BaseCommand):
    help = ("Import a Clotho home folder (~/.clotho): profiles, permissions, sandbox, chats "
            "and jobs. Running it again changes nothing. See docs/clotho-import.md.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("home", type=Path, help="the Clotho folder (e.g. ~/.clotho)")
        parser.add_argument("--user", required=True, help="who owns the chats and jobs")
        parser.add_argument("--discord-webhook", default="",
                            help="a Discord webhook URL for jobs that posted to Discord")
        parser.add_argument("--timezone", default=None,
                            help="the zone of the jobs' cron times (default: this host's)")

    def handle(self, *args: Any, **opts: Any) -> None:
        home: Path = opts["home"].expanduser()
        if not home.is_dir():
            raise CommandError(f"{home} is not a folder")
        user = get_user_model().objects.filter(username=opts["user"]).first()
        if user is None:
            raise CommandError(f"no user {opts['user']!r}")
        zone = opts["timezone"] or host_timezone()
        if timezone_error(zone):
            raise CommandError(f"{zone!r} is not a time zone name")
        try:
            report = ClothoImport(home, user, timezone=zone,
                                  discord_webhook=opts["discord_webhook"]).run()
        except GatewayError as exc:
            raise CommandError(exc.message) from None
        for line in report.lines():
            self.stdout.write(line)
