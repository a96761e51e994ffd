"""Which URLs a destination may point at: the gateway sends requests on a user's behalf,
so by default only to the services' own hosts (Discord, Slack) and, for generic webhooks,
to public addresses, never into the server's own network.

``GATEWAY_NOTIFY_UNSAFE_ANY_HOST`` lifts the rule (an operator's choice for receivers on
a private network, and the tests' local receivers)."""

from __future__ import annotations

import ipaddress
import socket
from email.utils import getaddresses
from urllib.parse import urlsplit

from django.conf import settings

from gateway.errors import GatewayError

SERVICE_HOSTS = {
    "discord": ({"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"},
                "/api/webhooks/"),
    "slack": ({"hooks.slack.com"}, "/services/"),
}


def _refuse(message: str) -> GatewayError:
    return GatewayError("invalid_request", message, 400, {"target": message})


def check_target(kind: str, target: str) -> str:
    """The target, cleaned; raises a 400 ``GatewayError`` when it may not be used."""
    target = target.strip()
    if kind == "email":
        return _check_addresses(target)
    parts = urlsplit(target)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _refuse("Give an http(s) URL.")
    if settings.GATEWAY_NOTIFY_UNSAFE_ANY_HOST:
        return target
    if parts.scheme != "https":
        raise _refuse("Only https URLs are allowed.")
    if kind in SERVICE_HOSTS:
        hosts, path = SERVICE_HOSTS[kind]
        if parts.hostname not in hosts or not parts.path.startswith(path):
            raise _refuse(f"A {kind} webhook URL looks like https://{sorted(hosts)[0]}"
                          f"{path}...")
        return target
    check_public_host(parts.hostname, parts.port or 443)
    return target


def check_public_host(host: str, port: int) -> None:
    """Every address the host resolves to must be a public one."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise _refuse(f"The host {host!r} does not resolve.") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise _refuse(f"The host {host!r} is on a private or local network.")


def _check_addresses(target: str) -> str:
    if "\n" in target or "\r" in target:  # header injection into the mail
        raise _refuse("Give one or more e-mail addresses, separated by commas.")
    addresses = [addr for _, addr in getaddresses([target]) if addr]
    if not addresses or any("@" not in a or "\n" in a or "\r" in a for a in addresses):
        raise _refuse("Give one or more e-mail addresses, separated by commas.")
    return ", ".join(addresses)
