"""The scheduler of a ``serve`` process: poll for due fires, claim them, run each as a
turn in the job's chat, record how it went, settle runs of dead processes.

Every process runs one; the database decides which of them runs a fire (``jobs.store``).
The clock is the system's: the loop wakes every ``GATEWAY_JOBS_POLL_SECONDS`` and asks
the database what is due by then, so a clock that jumps (or is moved by a test under
libfaketime) is followed at the next poll.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import socket
import time
import uuid

from channels.db import database_sync_to_async
from django.conf import settings

from chats.turns import get_manager
from jobs import store
from jobs.models import Job, JobRun

logger = logging.getLogger(__name__)
run_log = logging.getLogger("gateway.job")
db = database_sync_to_async
OUTCOME_POLL = 0.5  # seconds between looks at the chat while a run's turn goes on


def lease_seconds() -> float:
    """A run's lease: long enough to outlast a few polls (each renews it)."""
    return max(settings.GATEWAY_JOBS_RUN_LEASE_SECONDS, 3 * settings.GATEWAY_JOBS_POLL_SECONDS)


class Scheduler:
    def __init__(self) -> None:
        self.runner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.running: dict[int, asyncio.Task[None]] = {}

    async def run_forever(self, force_recovery: bool) -> None:
        await self._guarded(self.recover(force_recovery))
        while True:
            await self._guarded(self.tick())
            await asyncio.sleep(settings.GATEWAY_JOBS_POLL_SECONDS)

    @staticmethod
    async def _guarded(step: "asyncio.Future[object] | object") -> None:
        try:
            await step  # type: ignore[misc]
        except Exception:  # noqa: BLE001 - the scheduler must outlive one bad round
            logger.exception("scheduler round failed")

    async def tick(self) -> None:
        """One poll: keep our runs' leases, settle dead runs, start what is due."""
        if self.running:
            await db(store.renew)(list(self.running), self.runner, lease_seconds())
        await self.recover(force=False)
        for run_id in await db(store.claim_due)(self.runner, lease_seconds()):
            self.launch(run_id)

    async def recover(self, force: bool) -> int:
        settled = 0
        for run_id in await db(store.stale_runs)(force):
            if run_id not in self.running and await db(store.settle_dead_run)(run_id, force):
                settled += 1
        if settled:
            logger.info("settled %d interrupted job run(s)", settled)
        return settled

    async def run_now(self, job: Job) -> int:
        """Start a run of ``job`` here at once, outside its schedule."""
        run = await db(store.start_manual)(job, self.runner, lease_seconds())
        self.launch(run.pk)
        return run.pk

    def launch(self, run_id: int) -> None:
        # A fresh context: "run now" comes from a request's thread (async_to_sync), and a
        # task that inherited its context would send database calls to that request's
        # executor, which is gone once the response is out.
        task = asyncio.get_running_loop().create_task(self.execute(run_id),
                                                      context=contextvars.Context())
        self.running[run_id] = task
        task.add_done_callback(lambda _: self.running.pop(run_id, None))

    async def execute(self, run_id: int) -> None:
        """Run the job's prompt as a turn of its chat and record the outcome."""
        started = time.perf_counter()
        error = ""
        try:
            info = await db(store.run_info)(run_id)
        except JobRun.DoesNotExist:
            return  # the job was deleted before its run started
        try:
            message_id = await get_manager().submit(info.chat_id, info.prompt, stream=False)
            await db(store.set_message)(run_id, message_id)
            outcome = await asyncio.wait_for(self._outcome(info.chat_id, message_id),
                                             settings.GATEWAY_JOBS_RUN_TIMEOUT)
        except asyncio.TimeoutError:
            outcome, error = store.Outcome(True, "failed", stop_reason="timeout"), \
                "The run's turn did not end within GATEWAY_JOBS_RUN_TIMEOUT."
        except Exception:  # noqa: BLE001 - recorded on the run, logged with its trace
            logger.exception("job run %s failed", run_id)
            outcome, error = store.Outcome(True, "failed", stop_reason="error"), \
                "The run failed on the server; it was logged."
        await db(store.finish)(run_id, self.runner, outcome, error)
        run_log.info("job run", extra={"job": info.job_name, "run_id": run_id,
                                       "status": outcome.status,
                                       "duration_ms": round((time.perf_counter() - started)
                                                            * 1000, 1)})

    @staticmethod
    async def _outcome(chat_id: str, message_id: int) -> store.Outcome:
        while True:
            outcome = await db(store.turn_outcome)(chat_id, message_id)
            if outcome.done:
                return outcome
            await asyncio.sleep(OUTCOME_POLL)


_scheduler: Scheduler | None = None


def get_scheduler() -> Scheduler:
    """This process's scheduler (created on first use)."""
    global _scheduler
    if _scheduler is None:
        _scheduler = Scheduler()
    return _scheduler
