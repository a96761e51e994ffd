"""What the turn runner (``chats.turns``) calls: admit a turn before any upstream call
(model access, then budgets), record each model call, close the turn's charge."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from access import services as access
from agents.loop import ModelCall, OnModelCall
from gateway.errors import GatewayError
from profiles.models import ModelProfile
from usage import services

db = database_sync_to_async


def _admit(user_id: int, chat_id: str, profile_name: str) -> int | None:
    user = get_user_model().objects.get(pk=user_id)
    profile = ModelProfile.objects.filter(name=profile_name).first()
    if profile is not None:
        access.check_use(user, profile)
    return services.admit_turn(user_id, chat_id)


async def admit(user_id: int, chat_id: str, profile_name: str) -> int | None:
    """The turn's charge id (None without budget), or GatewayError
    (``profile_not_allowed``, ``budget_exceeded``)."""
    return await db(_admit)(user_id, chat_id, profile_name)


def error_data(exc: GatewayError) -> dict[str, Any]:
    """The ``agent.error`` data of a refusal."""
    if isinstance(exc, services.BudgetExceeded):
        return exc.event_data()
    return {"code": exc.code, "message": exc.message}


async def close(charge_id: int | None) -> None:
    if charge_id is not None:
        await db(services.close_turn)(charge_id)


def recorder(user_id: int, chat_id: str, profile_name: str, charge_id: int | None
             ) -> OnModelCall:
    """The loop's ``on_model_call``: one ledger row per model call."""

    async def on_model_call(call: ModelCall) -> None:
        await db(services.record_call)(
            user_id=user_id, chat_id=chat_id, profile_name=profile_name, model=call.model,
            input_tokens=call.input_tokens, output_tokens=call.output_tokens,
            duration_ms=call.duration_ms, charge_id=charge_id)

    return on_model_call
