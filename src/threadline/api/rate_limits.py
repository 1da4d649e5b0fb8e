"""Requests per minute per project, counted across every process of the deployment.

Counting in the database on every request would put a write on every request; instead each process
counts in memory and, a few times a second, adds its counts to the minute's row and reads back the
deployment's totals (storage/request_counts.py). A request is refused when the last known total plus
what this process counted since is at the limit, so the deployment overshoots by at most what its
processes admit within one flush interval. Minutes are fixed windows aligned to the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter

from threadline.domain.errors import RateLimited
from threadline.observability.logs import RetryLog
from threadline.observability.metrics import ADMISSION_REFUSALS
from threadline.storage.database import Database
from threadline.storage.scope import ALL_PROJECTS
from threadline.storage.uow import UnitOfWork

log = logging.getLogger("threadline.api")

FLUSH_S = 0.25
MINUTE_S = 60
KEEP_MINUTES = 5


class RequestLimiter:
    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._minute = 0
        self._pending: Counter[str] = Counter()  # counted here, not yet added to the database
        self._known: dict[str, int] = {}  # the deployment's totals at the last flush
        self._db: Database | None = None
        self._pruned = 0
        self._task: asyncio.Task[None] | None = None

    def admit(self, project_id: str) -> None:
        """Count one request of ``project_id``, or raise 429 when its minute is full."""
        if self.per_minute <= 0:
            return
        now = time.time()
        minute = int(now) - int(now) % MINUTE_S
        if minute != self._minute:  # a new window: what was pending belongs to the old one
            self._minute, self._known = minute, {}
            self._pending.clear()
        used = self._known.get(project_id, 0) + self._pending[project_id]
        if used >= self.per_minute:
            reset_s = max(1, math.ceil(minute + MINUTE_S - now))
            ADMISSION_REFUSALS.labels(reason="project_requests").inc()
            raise RateLimited(
                f"Rate limit reached for requests in this project: limit {self.per_minute} per minute. "
                f"Retry after {reset_s} s.",
                retry_after_s=reset_s,
                limit=self.per_minute,
            )
        self._pending[project_id] += 1

    async def start(self, db: Database) -> None:
        if self.per_minute > 0:
            self._db = db
            self._task = asyncio.create_task(self._flush_forever(), name="threadline-rate-limits")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            await self.flush()

    async def _flush_forever(self) -> None:
        failures = RetryLog(log, "flushing request counts")
        while True:
            await asyncio.sleep(FLUSH_S)
            try:
                await self.flush()
            except Exception:  # a database hiccup: the counts stay pending and go next time
                failures.failed()
            else:
                failures.succeeded()

    async def flush(self) -> None:
        if self._db is None or not (self._pending or self._known):
            return
        minute, pending = self._minute, dict(self._pending)
        self._pending.subtract(pending)
        self._pending = +self._pending  # drop the zeros

        def work(uow: UnitOfWork) -> dict[str, int]:
            uow.request_counts.add(minute, pending)
            if minute != self._pruned:  # once a minute a process: old windows go
                self._pruned = minute
                uow.request_counts.prune(minute - KEEP_MINUTES * MINUTE_S)
            return uow.request_counts.totals(minute, {*pending, *self._known})

        try:
            totals = await self._db.transaction(work, scope=ALL_PROJECTS)
        except BaseException:
            if minute == self._minute:
                self._pending.update(pending)
            raise
        if minute == self._minute:
            self._known = totals
