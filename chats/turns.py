"""Running turns: the per-chat queue and lock, approvals, cancel, recovery.

One ``TurnManager`` per process. A user message is stored as queued; whoever takes the
chat's lock (a conditional UPDATE, so it holds across processes) drains the queue one
turn at a time. Cancels and verdicts reach the running turn through the event hub
(``chats.hub``: process memory, or Redis pub/sub), so they work from any socket, any
REST call, any process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from dataclasses import replace
from typing import Any, Callable

from django.conf import settings
from django.db import transaction

from agents import events as ev
from agents.loop import Decision, TurnSpec, arguments_for_display, run_turn
from agents.providers import ToolCall
from agents import fs, toolbox
from agents.sandbox import SandboxPolicy
from agents.tools import ToolEnv
from audit.services import ToolAudit
from chats import compaction, history, store, system_prompt
from chats.hub import make_hub
from files import services as files_services
from mcp_servers import runtime as mcp_runtime
from gateway.infra import db, is_infrastructure_error
from permissions.resolver import level_for
from usage import turns as usage_turns

logger = logging.getLogger(__name__)
turn_log = logging.getLogger("gateway.turn")


class ControlChannel:
    """The running turn's inbox: the cancels and verdicts of its chat, sent by any socket
    or process (``TurnManager.cancel``, ``send_verdicts``) through the event hub."""

    def __init__(self, chat_id: str, hub: Any) -> None:
        self.chat_id = chat_id
        self.hub = hub
        self.verdicts: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        self.on_cancel: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.hub.watch_control(self.chat_id, self)

    async def close(self) -> None:
        self.hub.unwatch_control(self.chat_id, self)

    def deliver(self, message: dict[str, Any]) -> None:
        """A control for this turn, from any thread (a REST view's among them)."""
        if self.loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._act(message)
        else:
            self.loop.call_soon_threadsafe(self._act, message)

    def _act(self, message: dict[str, Any]) -> None:
        if message.get("type") == "turn.cancel" and self.on_cancel:
            self.on_cancel()
        elif message.get("type") == "turn.verdicts":
            self.verdicts.put_nowait(message["verdicts"])


class ApprovalGate:
    """``decide`` for the loop: resolve the policy per call, ask the user for ``ask``."""

    def __init__(self, chat_id: str, hub_emit: Any, control: ControlChannel,
                 allowed_tools: set[str]) -> None:
        self.chat_id = chat_id
        self.emit = hub_emit
        self.control = control
        self.allowed_tools = allowed_tools

    async def __call__(self, calls: list[ToolCall]) -> dict[str, Decision]:
        # The policy is read again for every round, so an admin's change applies to the
        # next tool call of every running chat.
        mode, overrides = await db(store.current_policy)()
        decisions: dict[str, Decision] = {}
        denied, asked = [], []
        for call in calls:
            level = level_for(call.name, mode, overrides, self.allowed_tools)
            if level == "allow":
                decisions[call.id] = Decision(True)
            elif level == "deny":
                denied.append(call)
                decisions[call.id] = Decision(False, f"the policy denies {call.name!r}")
            else:
                asked.append(call)
        if denied:
            await self.emit(ev.TOOL_DENIED, {"tool_calls": [_call_dict(c) for c in denied],
                                             "reason": f"denied by the permission policy "
                                                       f"(mode {mode})"})
        if asked:
            asked = await _unattended(self, asked, decisions)
        if asked:
            decisions.update(await self._ask(asked))
        return decisions

    async def _ask(self, calls: list[ToolCall]) -> dict[str, Decision]:
        wanted = [_call_dict(c) for c in calls]
        timeout = settings.GATEWAY_APPROVAL_TIMEOUT
        await db(store.create_approvals)(self.chat_id, wanted, timeout)
        while not self.control.verdicts.empty():  # stale verdicts of an earlier request
            self.control.verdicts.get_nowait()
        await self.emit(ev.TOOL_REQUEST, {"tool_calls": wanted})
        ids = {c.id for c in calls}
        verdicts: dict[str, str] | None = None
        deadline = time.monotonic() + timeout
        try:
            while verdicts is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    # Not wait_for: it can swallow a cancel that comes with a verdict.
                    async with asyncio.timeout(remaining):
                        got = await self.control.verdicts.get()
                except TimeoutError:
                    break
                if ids & set(got):
                    verdicts = got
        except asyncio.CancelledError:
            await asyncio.shield(db(store.resolve_approvals)(
                self.chat_id, {i: "cancelled" for i in ids}))
            raise
        if verdicts is None:
            await db(store.resolve_approvals)(self.chat_id, {i: "expired" for i in ids})
            await self.emit(ev.ERROR, {"code": "approval_timeout", "message":
                                       f"No verdict within {timeout:g} s; the tool call(s) "
                                       "were denied and the turn goes on."})
            return {i: Decision(False, "no verdict before the approval timeout") for i in ids}
        final = {i: verdicts.get(i, "deny") for i in ids}
        await db(store.resolve_approvals)(self.chat_id, final)
        result = {}
        for call in calls:
            verdict = final[call.id]
            if verdict == "allow_chat":
                self.allowed_tools.add(call.name)
                await db(store.allow_tool_for_chat)(self.chat_id, call.name)
            result[call.id] = Decision(verdict in ("allow", "allow_chat"),
                                       "" if verdict != "deny" else "the user denied it")
        return result


# --- unattended turns: a hook for the jobs app ------------------------------------
# A check returns, for a chat, None (someone may answer approval prompts) or the set of
# tools its current turn may run unasked (a job's run: nobody is there to answer); the
# other calls the policy would ask about are then denied instead of asked.
UnattendedCheck = Callable[[str], "set[str] | None"]
_unattended_checks: list[UnattendedCheck] = []


def register_unattended_check(check: UnattendedCheck) -> None:
    if check not in _unattended_checks:
        _unattended_checks.append(check)


def _unattended_tools(chat_id: str) -> set[str] | None:
    for check in _unattended_checks:
        tools = check(chat_id)
        if tools is not None:
            return tools
    return None


async def _unattended(gate: ApprovalGate, asked: list[ToolCall],
                      decisions: dict[str, Decision]) -> list[ToolCall]:
    """Settle asked-about calls of an unattended turn; returns the calls still to ask."""
    if not _unattended_checks:
        return asked
    tools = await db(_unattended_tools)(gate.chat_id)
    if tools is None:
        return asked
    refused = [c for c in asked if c.name not in tools]
    for call in asked:
        decisions[call.id] = Decision(call.name in tools, "" if call.name in tools else
                                      "nobody can approve it in an unattended run")
    if refused:
        await gate.emit(ev.TOOL_DENIED, {"tool_calls": [_call_dict(c) for c in refused],
                                         "reason": "unattended run: the policy asks about "
                                                   "these tools and the job does not list "
                                                   "them as allowed"})
    return []


def _env_settings(user_id: int) -> tuple[SandboxPolicy, fs.Quota]:
    return store.sandbox_policy(), files_services.quota_for(user_id)


def _current_env(user_id: int) -> Callable[[ToolEnv], Any]:
    """The loop's ``refresh_env``: the tool env with the sandbox config and the owner's
    workspace quota as they are now (read before every tool call, in one database call,
    so an admin's change applies to the next call of every running turn)."""

    async def refresh(env: ToolEnv) -> ToolEnv:
        sandbox, quota = await db(_env_settings)(user_id)
        return replace(env, sandbox=sandbox, quota=quota)

    return refresh


def _call_dict(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": arguments_for_display(call)}


class DbTurnStore:
    """The loop's ``TurnStore`` on the ORM. A reply is stored in the same database call
    as the ledger rows of the model calls before it (``ledger``)."""

    def __init__(self, writer: store.MessageWriter,
                 on_tool_calls: Callable[[list[dict[str, Any]]], None] | None = None,
                 ledger: usage_turns.TurnLedger | None = None) -> None:
        self.writer = writer
        self.on_tool_calls = on_tool_calls  # told of every reply's tool calls (the audit)
        self.ledger = ledger

    async def save_assistant(self, text: str, tool_calls: list[dict[str, Any]] | None,
                             usage: dict[str, int], model: str, status: str) -> None:
        calls = self.ledger.take() if self.ledger else []
        try:
            await db(self._save_reply)(calls, role="assistant", content=text,
                                       tool_calls=tool_calls, usage=usage or None,
                                       model=model, status=status)
        except BaseException:
            if self.ledger:  # the turn's end writes them (``TurnLedger.flush``)
                self.ledger.give_back(calls)
            raise
        if tool_calls and self.on_tool_calls:
            self.on_tool_calls(tool_calls)

    def _save_reply(self, calls: list[Any], **fields: Any) -> int:
        if not (calls and self.ledger):
            return self.writer.add(**fields)
        with transaction.atomic():  # both or neither: a retry must not count twice
            self.ledger.write(calls)
            return self.writer.add(**fields)

    async def save_tool_result(self, call_id: str, tool_name: str, content: str,
                               is_error: bool) -> None:
        await db(self.writer.add)(role="tool", tool_call_id=call_id, tool_name=tool_name,
                                  content=content, is_error=is_error)


class TurnManager:
    """Starts, tracks and stops the turns this process runs."""

    def __init__(self) -> None:
        self.hub = make_hub(settings.REDIS_URL, settings.GATEWAY_REPLAY_EVENTS,
                            settings.GATEWAY_REDIS_RETRY_SECONDS)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.process_id = f"{socket.gethostname()}:{os.getpid()}"
        # Chats whose turn took its message and has not ended: message id, and whether
        # turn_started went out (a failure must still end that turn for the clients).
        self._taken: dict[str, tuple[int, bool]] = {}
        # Chats whose drain here may have looked at the queue before a message of this
        # process was stored (see ``submit``).
        self._arrived: set[str] = set()
        # Drains that gave their chat's lock back and are closing (``_step_aside``).
        self._ending: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        # Model-written titles and announcements of turns' ends (chats.history).
        self.background: set[asyncio.Task[Any]] = set()

    def ensure_sweeper(self) -> None:
        """Start (once per process) the task that takes over turns of dead processes."""
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        interval = max(settings.GATEWAY_TURN_LEASE_SECONDS / 2, 0.5)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.recover(force=False)
                for key in await db(store.orphan_queues)():
                    await self.kick(str(key))
            except Exception:  # noqa: BLE001 - the sweeper must outlive a bad round
                logger.exception("turn sweeper round failed")

    async def startup(self, force: bool) -> None:
        """Settle dead turns, start the sweeper, run queues nobody runs."""
        try:
            count = await self.recover(force=force)
            if count:
                logger.info("recovered %d interrupted turn(s)", count)
            for key in await db(store.orphan_queues)():
                await self.kick(str(key))
        except Exception:  # noqa: BLE001 - a bad start-up round must not stop serving
            logger.exception("start-up recovery failed")
        self.ensure_sweeper()

    async def shutdown(self) -> None:
        """Cancel this process's turns and background tasks (tests, orderly stop)."""
        if self.background:  # titles and announcements of ended turns: let them finish
            await asyncio.wait(list(self.background), timeout=5)
        pending = [*self.tasks.values(), *self._ending,
                   *([self._sweeper] if self._sweeper else []), *self.background]
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)

    # -- events ----------------------------------------------------------------------
    async def ensure_loaded(self, chat_id: str) -> None:
        if not self.hub.is_loaded(chat_id):
            await self.hub.load(chat_id, await db(store.chat_last_seq)(uuid.UUID(chat_id)))

    async def publish(self, chat_id: str, event_type: str, data: dict[str, Any]) -> None:
        await self.ensure_loaded(chat_id)
        return await self.hub.publish(chat_id, event_type, data)

    # -- entry points ------------------------------------------------------------------
    async def submit(self, chat_id: str, content: Any, stream: bool,
                     token: str | None = None) -> int:
        """Queue a user message and make sure a turn will run it.

        Checking the socket's ``token`` (``Unauthorized`` when it is no longer valid),
        storing the message, taking the chat's lock and reading the first turn's setup
        are one database call when the chat is idle: each call is a thread hop, and this
        is the path to the first delta."""
        self.ensure_sweeper()
        # A lock is asked for even when a drain here has the chat: that drain may be in
        # its last look at the queue, and once the look has given the lock back, this
        # message takes it and starts its own turn in the same call.
        owner = self._new_owner()
        args = (uuid.UUID(chat_id), content, stream, owner,
                settings.GATEWAY_TURN_LEASE_SECONDS)
        message_id, queued, setup = await (
            db(store.enqueue_and_start)(*args) if token is None
            else db(store.enqueue_checked)(token, *args))
        if setup is None and chat_id in self.tasks:
            # The drain here holds the chat. Its next look at the queue sees this message
            # (both lock the chat's row first); the mark makes sure of it.
            self._arrived.add(chat_id)
        # Announced before the turn's task exists, so it always precedes turn_started.
        # (The database lock, not self.tasks, is what keeps a second turn from starting.)
        await self.publish(chat_id, ev.QUEUED, {"message_id": message_id, "position": queued})
        if setup is not None:
            ending = self.tasks.get(chat_id)
            if ending is not None:  # it gave the lock back and has not stepped aside yet
                self._ending.add(ending)
            self.tasks[chat_id] = asyncio.create_task(self._drain(chat_id, owner, setup))
        return message_id

    def drains_between_turns(self) -> list[str]:
        """Chats whose drain here runs no turn right now: it is starting one or ending
        (its last database calls, the release among them)."""
        return [chat_id for chat_id in self.tasks if chat_id not in self._taken] + \
            [task.get_name() for task in self._ending]

    def _step_aside(self, chat_id: str) -> None:
        """The current drain gave the chat's lock back: it is no longer the chat's drain
        here, so a message sent now takes the lock and starts its turn in its own
        database call (``submit``) instead of waiting for this drain to end. The drain
        is counted as ending until it has."""
        task = asyncio.current_task()
        if task is not None and self.tasks.get(chat_id) is task:
            del self.tasks[chat_id]
            self._ending.add(task)

    def _new_owner(self) -> str:
        # Not uuid4: os.urandom lets go of the interpreter on the event loop's thread,
        # which then waits for a database thread to hand it back. The owner only has to
        # differ from the process's other owners (and an earlier process with this pid).
        return f"{self.process_id}:{random.getrandbits(32):08x}"

    async def kick(self, chat_id: str) -> None:
        """Start draining the chat's queue here unless some process already does."""
        self.ensure_sweeper()
        if chat_id in self.tasks:
            return
        owner = self._new_owner()
        lease = settings.GATEWAY_TURN_LEASE_SECONDS
        if not await db(store.try_acquire)(uuid.UUID(chat_id), owner, lease):
            return
        task = asyncio.create_task(self._drain(chat_id, owner))
        self.tasks[chat_id] = task

    async def cancel(self, chat_id: str) -> None:
        await self.hub.send_control(chat_id, {"type": "turn.cancel"})

    async def send_verdicts(self, chat_id: str, verdicts: dict[str, str]) -> None:
        await self.hub.send_control(chat_id, {"type": "turn.verdicts", "verdicts": verdicts})

    # -- the drain loop ----------------------------------------------------------------
    async def _drain(self, chat_id: str, owner: str,
                     first: store.TurnSetup | None = None) -> None:
        key = uuid.UUID(chat_id)
        control = ControlChannel(chat_id, self.hub)
        heartbeat = asyncio.create_task(self._heartbeat(key, owner))
        setup = first
        if first is not None:  # enqueue_and_start already took its message
            self._taken[chat_id] = (first.message_id, False)
        failed = released = False
        try:
            await self.ensure_loaded(chat_id)
            await control.open()
            lease = settings.GATEWAY_TURN_LEASE_SECONDS
            self._arrived.discard(chat_id)  # the next look at the queue sees those
            setup = first or await db(store.start_next)(key, owner, lease)
            while setup is not None:
                self._taken[chat_id] = (setup.message_id, False)
                await self._run_one(chat_id, setup, control)
                self._taken.pop(chat_id, None)
                self._arrived.discard(chat_id)
                # The next queued message, or the lock given back, in one call. The
                # heartbeat stops first: it would take a released lock for a lost one.
                heartbeat.cancel()
                setup = await db(store.next_or_release)(key, owner, lease,
                                                        self.hub.known_seq(chat_id))
                released = setup is None
                if released:  # the chat is free: the next message starts a new drain
                    self._step_aside(chat_id)
                else:
                    heartbeat = asyncio.create_task(self._heartbeat(key, owner))
        except Exception as exc:
            failed = True
            await self._turn_failed(chat_id, owner, setup, exc)
        finally:
            heartbeat.cancel()
            try:
                await control.close()
            finally:  # whatever happened there, the chat's lock goes
                queued = False if released else await self._release(key, owner)
                self._step_aside(chat_id)
                self._ending.discard(asyncio.current_task())  # type: ignore[arg-type]
                arrived = chat_id in self._arrived and chat_id not in self.tasks
                if chat_id not in self.tasks:
                    self._arrived.discard(chat_id)
        # A message queued after the last look but before the release must still run;
        # after a failure not at once (what failed may fail again: Redis still away, a
        # message that cannot start): the sweeper runs waiting queues every lease/2 s.
        if not failed and (queued or arrived):
            with contextlib.suppress(Exception):
                await self.kick(chat_id)

    async def _turn_failed(self, chat_id: str, owner: str, setup: store.TurnSetup | None,
                           exc: Exception) -> None:
        """End the chat's turn after a failure: history made consistent (every tool call
        answered, an interrupted note), then ``agent.error`` and ``agent.turn_complete``
        so no client waits for a turn that is gone."""
        infrastructure = is_infrastructure_error(exc)
        if infrastructure:  # Redis or PostgreSQL failed under it: not a gateway bug
            logger.warning("turn of chat %s ended by an infrastructure error: %r",
                           chat_id, exc)
        else:
            logger.error("turn runner of chat %s failed", chat_id, exc_info=exc)
        taken = self._taken.get(chat_id)
        try:
            await _retrying(db(store.settle_failed_turn), uuid.UUID(chat_id), owner)
        except Exception as repair:  # noqa: BLE001 - the sweeper settles it after the lease
            logger.warning("could not settle the failed turn of chat %s: %r", chat_id, repair)
        code, message = ("infrastructure_error", "The database or Redis failed during the "
                         "turn; it was ended and the chat stays usable.") if infrastructure \
            else ("turn_failed", "The turn failed on the server; it was logged. The chat "
                  "stays usable.")
        try:
            if taken and not taken[1]:  # failed before the turn was announced
                await self.publish(chat_id, ev.TURN_STARTED, {"message_id": taken[0]})
            await self._emit(chat_id, setup, ev.ERROR, {"code": code, "message": message})
            if taken:  # through chats.history too: the end of a turn is announced
                await self._emit(chat_id, setup, ev.TURN_COMPLETE, {
                    "stop_reason": "error", "model": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0}})
            await self.hub.flush(chat_id)
        except Exception as tell:  # noqa: BLE001 - Redis is still away: sockets reconnect
            logger.warning("could not tell chat %s that its turn failed: %r", chat_id, tell)

    async def _release(self, key: uuid.UUID, owner: str) -> bool:
        """Give the chat's lock back (with how far seq got); True when messages wait in
        its queue. On a database failure the lease runs out and the sweeper does it."""
        chat_id = str(key)
        self._taken.pop(chat_id, None)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(settings.GATEWAY_REDIS_RETRY_SECONDS + 1):
                await self.hub.flush(chat_id)
        try:
            return await _retrying(db(store.release), key, owner, self.hub.known_seq(chat_id))
        except Exception as exc:  # noqa: BLE001
            logger.warning("could not release the turn lock of chat %s: %r", chat_id, exc)
            return False

    async def _heartbeat(self, key: uuid.UUID, owner: str) -> None:
        lease = settings.GATEWAY_TURN_LEASE_SECONDS
        while True:
            await asyncio.sleep(lease / 3)
            try:
                renewed = await db(store.renew)(key, owner, lease,
                                                self.hub.known_seq(str(key)))
            except Exception as exc:
                if not is_infrastructure_error(exc):
                    raise
                logger.warning("could not renew the turn lease of chat %s: %r", key, exc)
                continue  # the next beat tries again; the lease outlasts a few misses
            if not renewed:
                logger.warning("lost the turn lease of chat %s", key)
                task = self.tasks.get(str(key))
                if task:
                    task.cancel()
                return

    async def _run_one(self, chat_id: str, setup: store.TurnSetup,
                       control: ControlChannel) -> None:
        tool_audit = ToolAudit(chat_id, setup.owner_id)

        async def emit(event_type: str, data: dict[str, Any]) -> None:
            if event_type in history.WATCHED:  # never a delta
                await self._emit(chat_id, setup, event_type, data)
            else:
                await self.hub.publish(chat_id, event_type, data)
            if event_type in ToolAudit.WATCHED:  # one audit record per tool call
                await tool_audit.observe(event_type, data)

        started = time.perf_counter()
        self._taken[chat_id] = (setup.message_id, True)
        await emit(ev.TURN_STARTED, {"message_id": setup.message_id})
        if setup.provider is None:
            await emit(ev.ERROR, {"code": "no_profile", "message":
                                  "No model profile is set for this chat and there is no "
                                  "default: an admin creates one with POST /api/profiles "
                                  "(or starts the server with OPENAI_API_KEY set)."})
            await emit(ev.TURN_COMPLETE, {"stop_reason": "error", "model": None,
                                          "usage": {"input_tokens": 0, "output_tokens": 0}})
            return
        if setup.refusal is not None:  # model access or a budget (``store.start_next``)
            await emit(ev.ERROR, usage_turns.error_data(setup.refusal))
            await emit(ev.TURN_COMPLETE, {"stop_reason": "error", "model": None,
                                          "usage": {"input_tokens": 0, "output_tokens": 0}})
            return
        charge = setup.charge_id
        # MCP servers connected, config changes applied (the setup read the config).
        await mcp_runtime.ensure_started(list(setup.mcp_servers))
        prompt = await system_prompt.system_prompt_for(chat_id, setup)
        ledger = usage_turns.TurnLedger(setup.owner_id, chat_id, setup.provider.name, charge,
                                        username=setup.owner_name)
        spec = TurnSpec(
            provider=setup.provider,
            messages=[{"role": "system", "content": prompt}, *setup.history],
            tools=toolbox.schemas(),
            tool_env=ToolEnv(setup.workspace, setup.sandbox, settings.GATEWAY_BASH_TIMEOUT,
                             settings.GATEWAY_TOOL_OUTPUT_LIMIT,
                             # a file operation gets no more time than a shell command
                             file_timeout=settings.GATEWAY_BASH_TIMEOUT,
                             sandbox_key=chat_id),  # one warm sandbox per chat
            stream=setup.stream, max_rounds=settings.GATEWAY_MAX_TOOL_ROUNDS,
            timeout=settings.GATEWAY_UPSTREAM_TIMEOUT,
            retries=settings.GATEWAY_UPSTREAM_RETRIES, refresh_env=_current_env(setup.owner_id),
            max_wait=settings.GATEWAY_STREAM_MAX_WAIT_MS / 1000,
            on_model_call=ledger,
        )
        gate = ApprovalGate(chat_id, emit, control, setup.allowed_tools)
        turn_store = DbTurnStore(store.MessageWriter(uuid.UUID(chat_id), setup.next_position),
                                 on_tool_calls=tool_audit.expect, ledger=ledger)
        # A compaction's summary is a model call of the turn too: same ledger, same charge.
        summaries = usage_turns.recorder(setup.owner_id, chat_id, setup.provider.name, charge,
                                         purpose="compaction", username=setup.owner_name)
        task = asyncio.create_task(run_turn(
            spec, emit, gate, turn_store,
            prepare=compaction.auto_compactor(chat_id, setup, emit, summaries)))
        control.on_cancel = task.cancel
        try:
            await asyncio.wait({task})
        finally:
            control.on_cancel = None
            if not task.done():  # this runner itself is being cancelled (shutdown)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.shield(self._close_charge(ledger, charge))
            # Tool calls the turn never gave a result event (cut off by a cancel or a
            # failure) are audited now, once each.
            await asyncio.shield(tool_audit.close(*(
                ("cancelled", "the turn was cancelled before the call finished")
                if task.cancelled() else
                ("interrupted", "the turn ended by a failure before the call finished"))))
        self._log_turn(chat_id, setup, task, started)
        # After the turn, off the path to its first token: repair the skills mirror and
        # refresh the prompt's parts before the next turn's tools can run.
        await system_prompt.prepare(setup)
        if not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]
        await self.hub.flush(chat_id)  # the turn's events are in Redis, or it failed

    @staticmethod
    async def _close_charge(ledger: usage_turns.TurnLedger, charge: int | None) -> None:
        """The model calls no reply was stored with (a cancel, a failure) go to the
        ledger, then the turn's charge closes."""
        try:
            await _retrying(ledger.flush)
        finally:
            await usage_turns.close(charge)

    async def _emit(self, chat_id: str, setup: store.TurnSetup | None, event_type: str,
                    data: dict[str, Any]) -> None:
        """Send an error or the end of a turn, after ``chats.history`` kept what lasts
        (the error in the chat's history; a model-written title after the first reply;
        the announcement of the turn's end to other apps)."""
        data = await history.observe(
            chat_id, setup.message_id if setup else None,
            bool(setup and setup.wants_title), event_type, data,
            lambda kind, body: self.publish(chat_id, kind, body), self.background)
        await self.publish(chat_id, event_type, data)

    @staticmethod
    def _log_turn(chat_id: str, setup: store.TurnSetup, task: asyncio.Task[Any],
                  started: float) -> None:
        outcome = None if task.cancelled() or task.exception() else task.result()
        turn_log.info("turn", extra={
            "chat_id": chat_id, "user_id": setup.owner_id, "message_id": setup.message_id,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "stop_reason": outcome.stop_reason if outcome else
            ("cancelled" if task.cancelled() else "failed"),
            "model": outcome.model if outcome else None,
            "input_tokens": outcome.input_tokens if outcome else None,
            "output_tokens": outcome.output_tokens if outcome else None,
        })

    # -- recovery ----------------------------------------------------------------------
    async def recover(self, force: bool = False) -> int:
        """Settle turns whose process died, tell their sockets, run their queues."""
        recovered = 0
        for key in await db(store.stale_chats)(force):
            chat_id = str(key)
            if chat_id in self.tasks:
                continue
            outcome = await db(store.settle_dead_turn)(key, force)
            if outcome is None:
                continue
            if outcome == "interrupted":
                recovered += 1
                await self.publish(chat_id, ev.ERROR, {"code": "interrupted", "message":
                                                       "The server running this turn "
                                                       "stopped; the turn was interrupted "
                                                       "and the chat is usable again."})
            await self.kick(chat_id)
        return recovered


async def _retrying(call: Any, *args: Any, attempts: int = 3) -> Any:
    """A database call that must happen (settling, releasing), tried a few times."""
    for attempt in range(attempts):
        try:
            return await call(*args)
        except Exception as exc:
            if attempt == attempts - 1 or not is_infrastructure_error(exc):
                raise
            await asyncio.sleep(0.5 * (attempt + 1))


_manager: TurnManager | None = None


def get_manager() -> TurnManager:
    """This process's turn manager (created on first use, inside the event loop)."""
    global _manager
    if _manager is None:
        _manager = TurnManager()
    return _manager
