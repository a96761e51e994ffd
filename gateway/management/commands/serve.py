"""``manage.py serve``: migrate, make sure an admin can get in, run daphne."""

from __future__ import annotations

import os
from argparse import ArgumentDefaultsHelpFormatter
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from gateway import hooks, infra
from gateway.auth import create_token
from gateway.models import ApiToken


# Socket messages up to this many times GATEWAY_MAX_FRAME_BYTES are read and refused with
# agent.error; larger ones close the connection (1009) before they are buffered whole.
WS_HARD_LIMIT_FACTOR = 4


class Command(BaseCommand):
    help = "Apply migrations, ensure an admin user and token exist, and run the server."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # --help shows each option's default.
        kwargs.setdefault("formatter_class", ArgumentDefaultsHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to listen on (0.0.0.0 for every interface)")
        parser.add_argument("--port", type=int, default=8000, help="TCP port to listen on")
        parser.add_argument("--no-migrate", action="store_true", default=False,
                            help="do not apply database migrations before starting")

    def handle(self, *args: Any, **opts: Any) -> None:
        # Everything this process creates (database, logs, workspaces, files the tools
        # write) is for its own user only; the data dir of an older version is tightened.
        os.umask(0o077)
        self.tighten_data_dir()
        if os.geteuid() == 0:
            self.stdout.write("Note: running as root. Run the gateway as a dedicated "
                              "non-root user (README: Sandbox).")
        if not opts["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        self.ensure_admin()
        for _, line in hooks.serve_prepare.send(sender=self.__class__):
            if line:
                self.stdout.write(line)
        self.schedule_startup()
        self.stdout.write(f"Gateway {settings.VERSION} on http://{opts['host']}:{opts['port']}"
                          f" (data: {settings.GATEWAY_DATA_DIR})")
        self.stdout.flush()
        # daphne's own limit (1 MiB by default) would drop the socket at ours already.
        hard_limit = str(settings.GATEWAY_MAX_FRAME_BYTES * WS_HARD_LIMIT_FACTOR)
        _command_line().run([
            "-b", opts["host"], "-p", str(opts["port"]),
            *(["--proxy-headers"] if settings.GATEWAY_TRUST_PROXY_HEADERS else []),
            "--access-log", os.devnull if not settings.DEBUG else "-",
            "--websocket-max-message-size", hard_limit, "--websocket-max-frame-size", hard_limit,
            ":".join(settings.ASGI_APPLICATION.rsplit(".", 1)),
        ])

    def tighten_data_dir(self) -> None:
        """Data dir 0700; its files (database, secret key, logs) 0600. Only the top level:
        workspaces below are created 0700 and what is in them is the users' business."""
        data = settings.GATEWAY_DATA_DIR
        os.chmod(data, 0o700)
        for entry in os.scandir(data):
            mode = 0o600 if entry.is_file(follow_symlinks=False) else 0o700
            if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
                continue
            try:
                os.chmod(entry.path, mode)
            except OSError as exc:  # not ours: say so, it is the operator's to fix
                self.stderr.write(f"Cannot make {entry.path} private: {exc}")

    def ensure_admin(self) -> None:
        users = get_user_model()
        admin = users.objects.filter(is_staff=True).order_by("pk").first()
        if admin is None:
            admin = users.objects.create(username="admin", is_staff=True, is_superuser=True)
            admin.set_unusable_password()
            admin.save()
        if ApiToken.objects.filter(user=admin).exists():
            self.stdout.write(f"Admin user {admin.username!r} exists. A new token: "
                              f"python3 manage.py issue_token {admin.username} --admin")
            return
        _, token = create_token(admin, "serve-bootstrap")
        self.stdout.write(f"Admin user {admin.username!r}; its API token (shown once, keep "
                          f"it):\n{token}\nA new one later: python3 manage.py issue_token "
                          f"{admin.username} --admin")

    def schedule_startup(self) -> None:
        """Once daphne's event loop runs, tell the apps (``hooks.serve_loop_started``): the
        chats app settles turns that died with an earlier process and runs waiting queues.
        On the embedded default this is the only process, so a turn marked running died
        with the previous one and is settled at once instead of after its lease."""
        import daphne.server  # noqa: F401 - installs the asyncio reactor daphne runs on
        from twisted.internet import reactor

        def start() -> None:
            infra.serving()  # REST views on kept threads (gateway.infra.view_runner)
            hooks.serve_loop_started.send(sender=self.__class__,
                                          force_recovery=not settings.REDIS_URL)

        reactor.callWhenRunning(start)


def _command_line() -> Any:
    """daphne's command line, running a server whose sockets close with a code.

    autobahn "fails" a connection that breaks a limit (a message over
    ``--websocket-max-message-size``: 1009) by dropping the TCP connection unless told
    otherwise (``failByDrop``), so the client saw 1006 and never learnt why. With
    ``failByDrop=False`` it sends the close frame with the code first."""
    from daphne.cli import CommandLineInterface
    from daphne.server import Server
    from twisted.internet import reactor

    class GatewayServer(Server):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self.action_logger is not None:  # the access log (DEBUG only)
                self.action_logger = _access_log_without_query(self.action_logger)

        def run(self) -> None:
            # ws_factory is made inside run(); this runs once the reactor starts, before
            # any connection is accepted.
            reactor.callWhenRunning(
                lambda: self.ws_factory.setProtocolOptions(failByDrop=False))
            super().run()

    _cheap_autobahn_debug_arguments()
    cli = CommandLineInterface()
    cli.server_class = GatewayServer
    return cli


def _cheap_autobahn_debug_arguments() -> None:
    """autobahn builds the arguments of its debug log lines before the logger looks at
    the level: every frame sent formats its method name and two values through click's
    ANSI styling (``hltype``, ``hlval``: about 12 us a frame, 1.2 ms for a turn streamed
    in 100 deltas), and every connection pretty-prints its options (``pformat``, about
    0.5 ms). Debug logging is off under ``serve``; those names in autobahn's protocol
    modules become pass-throughs, so a debug line, if ever enabled, shows plain values."""
    import autobahn.twisted.websocket as twisted_websocket
    import autobahn.websocket.protocol as protocol

    def plain(value: Any, *args: Any, **kwargs: Any) -> Any:
        return value

    for module in (protocol, twisted_websocket):
        for name in ("hltype", "hlval", "pformat"):
            if hasattr(module, name):
                setattr(module, name, plain)


def _access_log_without_query(write: Any) -> Any:
    """daphne's access log writes each HTTP request's whole URI: a socket's token (and
    whatever else a client put in a query) would land in the log."""
    from gateway.logs import without_query

    def log(protocol: Any, action: str, details: dict[str, Any]) -> None:
        path = details.get("path")
        if isinstance(path, str):
            details = {**details, "path": without_query(path)}
        write(protocol, action, details)

    return log
