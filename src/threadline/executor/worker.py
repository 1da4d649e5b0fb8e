"""The embedded executor: runs queued runs as asyncio tasks (bounded concurrency), cancels and expires
them, recovers what a previous process left behind, and shuts down cleanly.

Lifecycle of a run here: ``submit(run_id)`` after the commit that queued it -> a task waits for a slot
-> ``Runner.execute``. ``interrupt(run_id, reason)`` cancels that task (the model call's HTTP response
is closed at once) and the task's wrapper finishes the run as ``cancelled`` or ``expired``.

Claiming: ``transitions.start`` moves queued -> in_progress under a row lock and records
``lease_owner``/``lease_expires_at``. The embedded executor is the only worker of its database, so at
start-up every in_progress run is an orphan of a dead process and is failed (see
``transitions.recover``). Separate workers on PostgreSQL would claim with ``FOR UPDATE SKIP LOCKED``
and only recover runs whose lease expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from functools import partial

from threadline.config import Settings
from threadline.executor.bus import EventBus
from threadline.executor.runner import Runner, RunProgress
from threadline.executor.tools import ToolRegistry
from threadline.llm.providers import ProviderRouter
from threadline.services.clock import now
from threadline.services.runs import transitions
from threadline.storage.database import Database

log = logging.getLogger(__name__)

LEASE_S = 60.0
# Statuses only a live task can be in: at start-up no task of ours exists, so they are orphans.
ORPHAN_STATUSES = ("in_progress", "cancelling")
MAX_CONCURRENT_RUNS = 512


class Executor:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        bus: EventBus,
        router: ProviderRouter,
        registry: ToolRegistry | None = None,
    ) -> None:
        self.db, self.bus, self.settings = db, bus, settings
        self.owner = f"embedded-{secrets.token_hex(4)}"
        self.runner = Runner(db, bus, router, registry or ToolRegistry(), self.owner, LEASE_S)
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_RUNS)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._progress: dict[str, RunProgress] = {}
        self._interrupts: dict[str, str] = {}
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def sweep_interval_s(self) -> float:
        # Fine-grained enough that expiry lands within a second or two of expires_at.
        return max(0.2, min(5.0, self.settings.run_expiry_s / 10))

    async def start(self) -> None:
        """Recover runs a previous process left (queued: run them; in_progress: fail; cancelling:
        cancel), then start the expiry sweep."""
        orphans = await self.db.transaction(lambda uow: uow.runs.ids_with_status(ORPHAN_STATUSES))
        for orphan_id in orphans:
            events = await self.db.transaction(partial(transitions.recover, run_id=orphan_id))
            self.runner.publish(orphan_id, events)
        for run_id in await self.db.transaction(lambda uow: uow.runs.ids_with_status(("queued",))):
            self.submit(run_id)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="threadline-expiry-sweep")

    def submit(self, run_id: str) -> None:
        """Execute a queued run (call only after the transaction that queued it has committed)."""
        if run_id in self._tasks:
            return
        self._progress[run_id] = RunProgress()
        self._tasks[run_id] = asyncio.create_task(self._run(run_id), name=f"run-{run_id}")

    def interrupt(self, run_id: str, reason: str) -> None:
        """Stop a run: ``reason`` is "cancel" or "expire". Without a task (e.g. a queued run this
        process does not hold) the run is finished directly."""
        task = self._tasks.get(run_id)
        if task is not None:
            self._interrupts[run_id] = reason
            task.cancel()
            return
        self._progress[run_id] = RunProgress()
        self._interrupts[run_id] = reason
        self._tasks[run_id] = asyncio.create_task(self._finish_interrupted(run_id), name=f"stop-{run_id}")

    async def _run(self, run_id: str) -> None:
        try:
            async with self._slots:
                await self.runner.execute(run_id, self._progress[run_id], time.time())
        except asyncio.CancelledError:
            if run_id not in self._interrupts:
                raise  # shutdown: the run stays in_progress and start-up recovery deals with it
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            await self._finish_interrupted(run_id)
        finally:
            self._forget(run_id)

    async def _finish_interrupted(self, run_id: str) -> None:
        try:
            reason = self._interrupts.get(run_id, "cancel")
            status = "expired" if reason == "expire" else "cancelled"
            await self.runner.end(run_id, status, self._progress[run_id])
        finally:
            self._forget(run_id)

    def _forget(self, run_id: str) -> None:
        task = self._tasks.get(run_id)
        if task is asyncio.current_task():
            self._tasks.pop(run_id, None)
        self._progress.pop(run_id, None)
        self._interrupts.pop(run_id, None)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                await self.sweep_expired()
            except Exception:  # a database hiccup must not end expiry for good
                log.exception("expiry sweep failed")

    async def sweep_expired(self) -> None:
        """Expire live runs past ``expires_at`` (runtime-behaviours §3), including requires_action."""
        due = await self.db.transaction(lambda uow: uow.runs.ids_due_to_expire(now()))
        for run_id in due:
            if run_id not in self._interrupts:
                self.interrupt(run_id, "expire")

    async def aclose(self) -> None:
        """Stop the sweep and every run task, and wait for them (no task outlives the app)."""
        self._interrupts.clear()  # a cancel now means shutdown: runs are left for start-up recovery
        tasks = list(self._tasks.values())
        if self._sweeper is not None:
            tasks.append(self._sweeper)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
