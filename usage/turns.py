"""What a turn (admitted in ``chats.store.start_next``), a manual compaction and a chat's
title call need: admit a turn before any upstream call (model access, then budgets),
record each model call (a turn's own, the summary of a compaction, a chat's title),
close the turn's charge."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from django.contrib.auth import get_user_model

from access import services as access
from agents.loop import ModelCall, OnModelCall
from gateway.errors import GatewayError
from gateway.infra import db
from profiles.models import ModelProfile
from usage import services


def admit_now(user_id: int, chat_id: str, profile_name: str) -> int | None:
    """``admit``, from sync code (a view): the charge id, or GatewayError."""
    user = get_user_model().objects.get(pk=user_id)
    profile = ModelProfile.objects.filter(name=profile_name).first()
    if profile is not None:
        access.check_use(user, profile)
    return services.admit_turn(user_id, chat_id)


def admit_starting(user: Any, chat_id: str, profile_id: int, *, granted: bool,
                   budgets: bool) -> int | None:
    """``admit_now`` inside the database call that starts a turn, told by the process's
    cached configuration what can apply: ``granted`` when the profile has grants (else
    it is open to everyone), ``budgets`` when any budget exists. The common case (an
    open profile, no budget) does no query."""
    if granted and not access.is_admin(user):
        profile = ModelProfile.objects.filter(pk=profile_id).first()
        if profile is not None:
            access.check_use(user, profile)
    return services.admit_user_turn(user, chat_id) if budgets else None


def error_data(exc: GatewayError) -> dict[str, Any]:
    """The ``agent.error`` data of a refusal."""
    if isinstance(exc, services.BudgetExceeded):
        return exc.event_data()
    return {"code": exc.code, "message": exc.message}


async def close(charge_id: int | None) -> None:
    if charge_id is not None:
        await db(services.close_turn)(charge_id)


def recorder(user_id: int, chat_id: str, profile_name: str, charge_id: int | None,
             purpose: str = "turn",
             to_async: Callable[..., Callable[..., Awaitable[Any]]] = db,
             username: str | None = None) -> OnModelCall:
    """The loop's (or the compaction's) ``on_model_call``: one ledger row per model call,
    added to the turn's charge. ``to_async`` wraps the database write (``sync_to_async``
    from a sync view, whose connection may be inside a transaction); ``username`` (the
    user's, when known) saves the write a query."""

    async def on_model_call(call: ModelCall) -> None:
        await to_async(services.record_call)(
            user_id=user_id, chat_id=chat_id, profile_name=profile_name, model=call.model,
            input_tokens=call.input_tokens, output_tokens=call.output_tokens,
            duration_ms=call.duration_ms, charge_id=charge_id, purpose=purpose,
            username=username)

    return on_model_call


class TurnLedger:
    """A turn's own model calls, kept until the turn's next database write takes them
    (``rows``, run in the same call as the reply's message: one thread hop, not two, at
    the end of every model call). ``flush`` writes what is still kept: the runner calls
    it when the turn ends, before the charge is closed, however the turn ended."""

    def __init__(self, user_id: int, chat_id: str, profile_name: str,
                 charge_id: int | None, username: str | None = None) -> None:
        self.fields = {"user_id": user_id, "chat_id": chat_id, "profile_name": profile_name,
                       "charge_id": charge_id, "purpose": "turn", "username": username}
        self.pending: list[ModelCall] = []

    async def __call__(self, call: ModelCall) -> None:
        """The loop's ``on_model_call``: nothing written yet."""
        self.pending.append(call)

    def take(self) -> list[ModelCall]:
        taken, self.pending = self.pending, []
        return taken

    def give_back(self, calls: list[ModelCall]) -> None:
        """Calls whose write failed: kept for the next write or the flush."""
        self.pending[:0] = calls

    def write(self, calls: list[ModelCall]) -> None:
        """The ledger rows of ``calls`` (sync, on a database thread)."""
        for call in calls:
            services.record_call(model=call.model, input_tokens=call.input_tokens,
                                 output_tokens=call.output_tokens,
                                 duration_ms=call.duration_ms, **self.fields)

    async def flush(self) -> None:
        calls = self.take()
        if calls:
            try:
                await db(self.write)(calls)
            except BaseException:
                self.give_back(calls)
                raise
