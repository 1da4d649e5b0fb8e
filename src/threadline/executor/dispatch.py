"""How an API process hands runs to an executor: ``RunDispatcher``.

With the embedded executor the dispatcher is the ``Executor`` itself (a direct hand-off in memory).
An API process without one (``serve --no-executor``) tells the workers through the database instead:
a NOTIFY on PostgreSQL; on SQLite the workers' polling finds the run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from threadline.storage.database import Database
from threadline.storage.notify import RUNS_CHANNEL, announce

log = logging.getLogger(__name__)


class RunDispatcher(Protocol):
    def submit(self, run_id: str) -> None:
        """A run was queued (call after the commit): have an executor claim it soon."""
        ...

    def interrupt(self, run_id: str, reason: str) -> None:
        """Stop a run ("cancel" after the commit that made it cancelling, or "expire")."""
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

    def submit(self, run_id: str) -> None:
        self.background.spawn(announce(self.db, RUNS_CHANNEL, f"queued:{run_id}"), f"notify-{run_id}")

    def interrupt(self, run_id: str, reason: str) -> None:
        # Expiry is the workers' own sweep; only a cancel needs telling.
        if reason == "cancel":
            self.background.spawn(announce(self.db, RUNS_CHANNEL, f"cancel:{run_id}"), f"notify-{run_id}")

    async def aclose(self) -> None:
        await self.background.aclose()
