"""``manage.py issue_token <username> [--admin] [--name N]``: prints a new token last."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from gateway.auth import create_token


class Command(BaseCommand):
    help = "Create a user if missing and print a new API token for it (the last line)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--admin", action="store_true", help="make the user an admin")
        parser.add_argument("--name", default="cli", help="a name for the token")
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args: Any, **opts: Any) -> None:
        users = get_user_model()
        user, created = users.objects.get_or_create(username=opts["username"])
        if created:
            user.set_unusable_password()
        first_user = created and not users.objects.exclude(pk=user.pk).exists()
        if (opts["admin"] or first_user) and not (user.is_staff and user.is_superuser):
            user.is_staff = user.is_superuser = True
        user.save()
        days = opts["expires_days"]
        _, token = create_token(user, opts["name"], dt.timedelta(days=days) if days else None)
        role = "admin" if user.is_staff else "member"
        self.stderr.write(f"{'Created' if created else 'Existing'} {role} user "
                          f"{user.username!r}; new token {opts['name']!r}:")
        self.stdout.write(token)
