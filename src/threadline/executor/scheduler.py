"""The run executor: claims queued runs, executes them as asyncio tasks (bounded concurrency), holds
a lease on each while it runs, recovers runs whose executor died, cancels and expires runs, and
shuts down cleanly. The same class runs embedded in an API process and in ``threadline worker``
processes (``runtime.worker_main``); any number of them may share one database.

- Claim: one loop, woken by ``submit`` (in-process hand-off), by a ``queued:<run>`` NOTIFY from an
  API process, or every ``run_poll_s`` (fallback). ``transitions.claim`` takes each queued run
  exactly once (``FOR UPDATE SKIP LOCKED`` + a conditional UPDATE), leased to ``owner``.
- Heartbeat: every ``run_heartbeat_s`` the leases of our runs are renewed; the answer also reveals
  a cancel requested through another process (status ``cancelling``) and a lease lost to another
  worker (we stop our task without touching the run). Then runs with no live lease are recovered.
- Recovery (``transitions.recover``): in_progress fails with a clear ``last_error`` (the model call
  is lost; replaying it could repeat output a client already saw), cancelling becomes cancelled.
  A lease held by a dead process on this host (kill -9, then a restart) is recovered at start-up
  without waiting for it to expire; elsewhere the lease must run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial

from threadline.blobs import BlobStore
from threadline.config import Settings
from threadline.domain.run_states import Interrupt, RunStatus, is_terminal
from threadline.events.bus import EventBus
from threadline.events.dispatch import BackgroundTasks
from threadline.executor.runner import Runner, RunProgress
from threadline.executor.tools import ToolRegistry
from threadline.llm.providers import ProviderRouter
from threadline.observability.logs import RetryLog
from threadline.retrieval import tokens
from threadline.services.background import (
    every,
    hold_owner,
    new_owner,
    owner_is_dead,
    release_owner,
    woken_or_polled,
)
from threadline.services.runs import leases, transitions
from threadline.services.runs.transitions import RunStart
from threadline.storage.database import Database
from threadline.storage.notify import RUNS_CHANNEL, Notifications, RunNotice, announce
from threadline.storage.scope import enter_project
from threadline.storage.uow import UnitOfWork

log = logging.getLogger(__name__)

CLAIM_BATCH = 32  # runs per claim transaction: bounds the messages one transaction loads


class Executor:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        bus: EventBus,
        router: ProviderRouter,
        blobs: BlobStore,
        registry: ToolRegistry | None = None,
        notifications: Notifications | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db, self.bus, self.settings = db, bus, settings
        # Wall-clock Unix seconds for leases and expiry (tests pass a controllable clock).
        self._clock = clock
        self.owner = new_owner()
        hold_owner(self.owner)
        self.runner = Runner(
            db,
            bus,
            router,
            registry or ToolRegistry(),
            blobs,
            checkpoint_s=settings.stream_checkpoint_s,
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._progress: dict[str, RunProgress] = {}
        self._interrupts: dict[str, Interrupt] = {}
        # Runs we execute that the last heartbeat found stopped and unleased (see ``heartbeat``).
        self._seen_stopped: set[str] = set()
        self._wake = asyncio.Event()
        self._claiming = True
        self._saturated = False
        self._loops: list[asyncio.Task[None]] = []
        self._background = BackgroundTasks()
        if notifications is not None:
            notifications.on(RUNS_CHANNEL, self._on_notice)
            notifications.on_reconnect(self._wake.set)

    @property
    def sweep_interval_s(self) -> float:
        # Fine-grained enough that expiry lands within a second or two of expires_at.
        return max(0.2, min(5.0, self.settings.run_expiry_s / 10))

    async def start(self) -> None:
        """Recover what dead executors left, then start claiming, heartbeats and the expiry sweep."""
        # Off the loop and not awaited: the first run would otherwise load it on the loop.
        asyncio.get_running_loop().run_in_executor(None, tokens.preload)
        await self._recover_dead_local_owners()
        await self.recover_orphans()
        heartbeat = every(lambda: self.settings.run_heartbeat_s, self._heartbeat_step, log, "run heartbeat")
        sweep = every(lambda: self.sweep_interval_s, self.sweep_expired, log, "expiry sweep")
        self._loops = [
            asyncio.create_task(self._claim_forever(), name="threadline-claim"),
            asyncio.create_task(heartbeat, name="threadline-heartbeat"),
            asyncio.create_task(sweep, name="threadline-expiry-sweep"),
        ]
        self._wake.set()

    def submit(self, run_id: str) -> None:
        """A run was queued (call after its commit): claim it now rather than at the next poll."""
        self._wake.set()

    def interrupt(self, run_id: str, reason: Interrupt) -> None:
        """Stop a run: ``reason`` is CANCEL or EXPIRE. Our own task is cancelled (the model call's
        HTTP response is closed at once) and finishes the run. A cancelled run we do not hold is
        announced to whoever holds it, and finished here if nobody does (e.g. still queued)."""
        task = self._tasks.get(run_id)
        if task is not None:
            self._interrupts[run_id] = reason
            task.cancel()
            return
        if reason == Interrupt.CANCEL:
            self._background.spawn(
                announce(self.db, RUNS_CHANNEL, RunNotice("cancel", run_id).payload), f"cancel-{run_id}"
            )
            self._background.spawn(self._recover(run_id), f"recover-{run_id}")
            return
        # expire: the sweep picks only runs no live worker holds, so finishing here is safe.
        self._progress[run_id] = RunProgress()
        self._interrupts[run_id] = reason
        self._tasks[run_id] = asyncio.create_task(self._finish_interrupted(run_id), name=f"stop-{run_id}")

    def _on_notice(self, payload: str) -> None:
        notice = RunNotice.parse(payload)
        if notice is None:
            return
        run_id = notice.run_id
        if notice.kind == "queued":
            self._wake.set()
        elif run_id in self._tasks:
            self.interrupt(run_id, Interrupt.CANCEL)
        else:
            self._background.spawn(self._recover(run_id), f"recover-{run_id}")

    # --- claiming and running -------------------------------------------------------------------

    async def _claim_forever(self) -> None:
        failures = RetryLog(log, "claiming runs")
        while self._claiming:
            await woken_or_polled(self._wake, self.settings.run_poll_s)
            try:
                await self._claim_available()
            except Exception:  # a database hiccup must not end claiming for good
                failures.failed()
            else:
                failures.succeeded()

    async def _claim_available(self) -> None:
        while self._claiming:
            free = self.settings.run_max_concurrent - len(self._tasks)
            self._saturated = free <= 0
            if self._saturated:
                return
            limit = min(free, CLAIM_BATCH)
            until = self._clock() + self.settings.run_lease_s
            starts, elsewhere = await self.db.transaction(partial(self._claim, limit=limit, until=until))
            for start in starts:
                self.bus.executing(start.run.id, streamed_elsewhere=start.run.id in elsewhere)
                self._launch(start)
            if len(starts) < limit:
                return

    def _claim(self, uow: UnitOfWork, limit: int, until: float) -> tuple[list[RunStart], set[str]]:
        """Claim up to ``limit`` runs, and ask the bus which of them another process streams."""
        opens = self.runner.opens_at_claim
        starts = transitions.claim(uow, self.owner, lease_expires_at=until, limit=limit, opens=opens)
        return starts, self.bus.streamed_elsewhere(uow, [start.run.id for start in starts])

    def _launch(self, start: RunStart) -> None:
        run_id = start.run.id
        self.runner.run_log.started(start.run, self.runner.router.provider_for(start.run.model))
        self.runner.publish(run_id, start.events)
        self._progress[run_id] = RunProgress()
        self._tasks[run_id] = asyncio.create_task(self._run(start), name=f"run-{run_id}")

    async def _run(self, start: RunStart) -> None:
        run_id = start.run.id
        # This task (and the tool calls it makes) reads and writes only the run's project's objects.
        enter_project(start.project_id)
        try:
            await self.runner.execute(start, self._progress[run_id])
        except asyncio.CancelledError:
            reason = self._interrupts.get(run_id)
            if reason is None:
                raise  # not ours to finish (our process is being torn down): the lease lapses
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            if reason == Interrupt.LOST:
                return  # another worker took the run over: it is theirs to finish
            if reason == Interrupt.SHUTDOWN:
                progress = self._progress[run_id]
                await self.runner.fail(run_id, "server_error", transitions.SHUTDOWN_MESSAGE, progress)
                return
            await self._finish_interrupted(run_id)
        finally:
            self._forget(run_id)

    async def _finish_interrupted(self, run_id: str) -> None:
        try:
            reason = self._interrupts.get(run_id, Interrupt.CANCEL)
            status = RunStatus.EXPIRED if reason == Interrupt.EXPIRE else RunStatus.CANCELLED
            await self.runner.end(run_id, status, self._progress[run_id])
        finally:
            self._forget(run_id)

    def _forget(self, run_id: str) -> None:
        task = self._tasks.get(run_id)
        if task is asyncio.current_task():
            self._tasks.pop(run_id, None)
        self._progress.pop(run_id, None)
        self._interrupts.pop(run_id, None)
        self._seen_stopped.discard(run_id)
        self.runner.run_log.forget(run_id)
        if self._saturated:  # a slot is free again: claim without waiting for the next poll
            self._wake.set()

    # --- leases and recovery -------------------------------------------------------------------

    async def _heartbeat_step(self) -> None:
        # A failure is tried again at the next beat: the lease is long enough for that.
        await self.heartbeat()
        await self.recover_orphans()

    async def heartbeat(self) -> None:
        run_ids = list(self._tasks)
        if not run_ids:
            return
        until = self._clock() + self.settings.run_lease_s
        states = await self.db.transaction(lambda uow: leases.renew(uow, self.owner, run_ids, until))
        for run_id, (status, owner) in states.items():
            task = self._tasks.get(run_id)
            if task is None or run_id in self._interrupts:
                continue
            if owner is not None and owner != self.owner:
                log.warning("run %s: lease lost to %s; stopping our copy", run_id, owner)
                self._interrupts[run_id] = Interrupt.LOST
                task.cancel()
            elif owner is None and is_terminal(status):
                # Another worker recovered the run (we had stalled past our lease) and ended it. Our
                # own task also leaves the run ended and unleased, just before it forgets the run;
                # only a run seen so at two heartbeats in a row is surely someone else's doing.
                if run_id in self._seen_stopped:
                    log.warning("run %s: ended elsewhere (%s); stopping our copy", run_id, status)
                    self._interrupts[run_id] = Interrupt.LOST
                    task.cancel()
                else:
                    self._seen_stopped.add(run_id)
            elif status == RunStatus.CANCELLING:
                self.interrupt(run_id, Interrupt.CANCEL)

    async def recover_orphans(self) -> None:
        """Finish runs no live executor holds (lease expired or missing)."""
        orphans = await self.db.transaction(lambda uow: leases.orphans(uow, self._clock()))
        for run_id in orphans:
            if run_id not in self._tasks:
                await self._recover(run_id)

    async def _recover_dead_local_owners(self) -> None:
        leased = await self.db.transaction(leases.leased)
        for run_id, owner in leased:
            if owner != self.owner and owner_is_dead(owner):
                await self._recover(run_id, dead_owner=owner)

    async def _recover(self, run_id: str, dead_owner: str | None = None) -> None:
        recover = partial(transitions.recover, run_id=run_id, now_s=self._clock(), dead_owner=dead_owner)
        await self.bus.transaction(self.db, run_id, recover)

    # --- expiry ----------------------------------------------------------------------------------

    async def sweep_expired(self) -> None:
        """Expire live runs past ``expires_at``, including requires_action;
        runs another live worker holds are left to that worker's sweep."""
        now_s = self._clock()
        due = await self.db.transaction(lambda uow: leases.due_to_expire(uow, now_s, self.owner))
        for run_id in due:
            if run_id not in self._interrupts:
                self.interrupt(run_id, Interrupt.EXPIRE)

    # --- shutdown --------------------------------------------------------------------------------

    async def aclose(self, grace_s: float = 0.0) -> None:
        """Stop claiming; give running runs ``grace_s`` to finish; fail the rest (their model calls
        are cut: "the worker shut down"); stop every task (no task outlives the executor)."""
        self._claiming = False
        self._wake.set()
        if self._tasks and grace_s > 0:
            await asyncio.wait(list(self._tasks.values()), timeout=grace_s)
        running = [(run_id, task) for run_id, task in self._tasks.items() if not task.done()]
        for run_id, task in running:
            self._interrupts.setdefault(run_id, Interrupt.SHUTDOWN)
            task.cancel()
        for _, task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for loop_task in self._loops:
            loop_task.cancel()
        for loop_task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
        await self._background.aclose()
        self._tasks.clear()
        release_owner(self.owner)
