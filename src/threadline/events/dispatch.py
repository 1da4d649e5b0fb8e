"""How an API process hands runs to an executor: ``RunDispatcher``.

With the embedded executor the dispatcher is the ``Executor`` itself (a direct hand-off in memory).
An API process without one (``serve --no-executor``) tells the workers through the database instead:
a NOTIFY on PostgreSQL; on SQLite the workers' polling finds the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from threadline.domain.run_states import Interrupt
from threadline.storage.database import Database
from threadline.storage.notify import RUNS_CHANNEL, RunNotice, announce

log = logging.getLogger(__name__)


class RunDispatcher(Protocol):
    def submit(self, run_id: str) -> None:
        """A run was queued (call after the commit): have an executor claim it soon."""
        ...

    def interrupt(self, run_id: str, reason: Interrupt) -> None:
        """Stop a run (CANCEL after the commit that made it cancelling, or EXPIRE)."""
        ...


class BackgroundTasks:
    """Fire-and-forget coroutines that are kept referenced (asyncio holds tasks only weakly) and whose
    failures are logged, not lost."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def aclose(self, timeout_s: float = 2.0) -> None:
        """Let pending work (e.g. a NOTIFY) finish for ``timeout_s``, then cancel the rest."""
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class NotifyingDispatcher:
    """For API processes that execute nothing: each hand-off is a NOTIFY the workers LISTEN for."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.background = BackgroundTasks()
        self._watch: asyncio.Task[None] | None = None
        self._warned: set[str] = set()

    def watch_unclaimed(self, after_s: float) -> None:
        """Warn (once per run) about runs queued for ``after_s`` that no worker claimed: with
        ``serve --no-executor`` that means no ``threadline worker`` is running."""
        self._watch = asyncio.create_task(self._watch_forever(after_s), name="threadline-unclaimed-runs")

    async def _watch_forever(self, after_s: float) -> None:
        while True:
            await asyncio.sleep(min(10.0, after_s / 3))
            try:
                ids = await self.db.transaction(_queued_before(int(time.time() - after_s)))
            except Exception:  # a database hiccup: try again next time
                log.debug("checking for unclaimed runs failed", exc_info=True)
                continue
            fresh = [run_id for run_id in ids if run_id not in self._warned]
            if fresh:
                log.warning(
                    "%d run(s) queued for over %g s and no worker has claimed them (e.g. %s): this server "
                    "runs with --no-executor; start `threadline worker` on the same database",
                    len(fresh),
                    after_s,
                    fresh[0],
                )
            self._warned = set(ids)

    def submit(self, run_id: str) -> None:
        self.background.spawn(
            announce(self.db, RUNS_CHANNEL, RunNotice("queued", run_id).payload), f"notify-{run_id}"
        )

    def interrupt(self, run_id: str, reason: Interrupt) -> None:
        # Expiry is the workers' own sweep; only a cancel needs telling.
        if reason == Interrupt.CANCEL:
            self.background.spawn(
                announce(self.db, RUNS_CHANNEL, RunNotice("cancel", run_id).payload), f"notify-{run_id}"
            )

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await self.background.aclose()


def _queued_before(cutoff: int) -> Callable[[Any], list[str]]:
    """The ids of (up to 20) runs queued before ``cutoff`` (epoch seconds)."""
    return lambda uow: list(uow.runs.queued_since(cutoff, 20))
