"""Destinations: the one access check, creation and change."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from gateway.errors import GatewayError
from notifications.models import Destination
from notifications.targets import check_target


def get_destination_for(user: AbstractBaseUser, destination_id: Any) -> Destination:
    """The user's own destination; anyone else's is "not found"."""
    try:
        return Destination.objects.get(pk=int(destination_id), owner=user)
    except (ValueError, TypeError, Destination.DoesNotExist):
        raise GatewayError("not_found", "No such destination.", 404) from None


def destinations_named(user: AbstractBaseUser, names: list[str]) -> list[Destination]:
    """The user's destinations of these names; a missing one is a 400 on ``field``."""
    found = {d.name: d for d in Destination.objects.filter(owner=user, name__in=names)}
    missing = [n for n in names if n not in found]
    if missing:
        raise GatewayError("invalid_request", f"No destination named {missing[0]!r}.", 400,
                           {"destinations": f"Unknown destination {missing[0]!r}."})
    return [found[n] for n in names]


def _apply(destination: Destination, body: dict[str, Any]) -> None:
    if "target" in body:
        destination.set_target(check_target(destination.kind, body["target"]))
    if "secret" in body:
        destination.set_secret(body["secret"])
    if destination.kind == "webhook" and not destination.secret_encrypted:
        raise GatewayError("invalid_request", "A webhook needs a secret to sign with.", 400,
                           {"secret": "Required for a webhook (16 characters or more)."})
    if "enabled" in body:
        destination.enabled = body["enabled"]
    if "name" in body:
        destination.name = body["name"]


def save(destination: Destination) -> Destination:
    try:
        with transaction.atomic():
            destination.save()
    except IntegrityError:
        raise GatewayError("conflict", f"A destination named {destination.name!r} exists.",
                           409, {"name": "Already used."}) from None
    return destination


def create(user: AbstractBaseUser, body: dict[str, Any]) -> Destination:
    destination = Destination(owner=user, kind=body["kind"])
    _apply(destination, body)
    return save(destination)


def update(destination: Destination, body: dict[str, Any]) -> Destination:
    _apply(destination, body)
    return save(destination)
