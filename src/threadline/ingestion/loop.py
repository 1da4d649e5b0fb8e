"""The ingestion loop: indexes vector-store files in the background, never in a request.

It wakes when the API says new files are queued (``notify``, after the commit) and polls as a
fallback (another process may have queued them). Each claimed file holds a lease in the loop's name
(``owner``) that a heartbeat renews; a loop that dies (with its process) lets its lease run out, and
the file is picked up again, at most ``ingestion_max_attempts`` times (then it fails: a file that
kills the process cannot crash-loop it). A loop that stalled past its lease while another claimed
the file can no longer renew, complete or fail it: its result is dropped. The parsing itself
happens in the child processes of ``pool.py``. On SQLite with one API process, leases left by a
previous process are void at start-up. Expired files are swept on idle ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from threadline.blobs import BlobStore
from threadline.config import Settings
from threadline.domain.files import VectorStoreFile
from threadline.ingestion.pool import IngestionPool, PoolLimits
from threadline.llm.types import EmbeddingModel
from threadline.observability.logs import RetryLog
from threadline.services import files as files_service
from threadline.services import ingestion
from threadline.services.background import new_owner, woken_or_polled
from threadline.storage.database import Database

log = logging.getLogger("threadline.ingestion")

POLL_INTERVAL_S = 0.5
SWEEP_INTERVAL_S = 60.0
_CLAIM_BATCH = 4


class IngestionLoop:
    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        embedder: EmbeddingModel | None,
        *,
        sole_process: bool = True,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = settings or Settings()
        self._clock = clock  # wall-clock Unix seconds for leases (tests pass a controllable clock)
        self.max_attempts = settings.ingestion_max_attempts
        self.owner = new_owner()
        # Three renewals per lease: one missed (a slow transaction) does not lose the file.
        self.heartbeat_s = ingestion.LEASE_S / 3
        # Files are parsed in child processes with hard limits (see pool.py).
        self.pool = IngestionPool(
            PoolLimits(
                processes=settings.ingestion_processes,
                memory_bytes=settings.ingestion_memory_bytes,
                cpu_s=settings.ingestion_cpu_s,
                timeout_s=settings.ingestion_timeout_s,
                max_tokens=settings.ingestion_max_tokens,
            )
        )
        self.db = db
        self.sole_process = sole_process
        self.blobs = blobs
        self.embedder = embedder
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_sweep = 0.0

    def notify(self) -> None:
        """New files are queued (call after the commit that queued them)."""
        self._wake.set()

    async def start(self) -> None:
        if self.db.dialect == "sqlite" and self.sole_process:
            await ingestion.release_all_leases(self.db)
        self._task = asyncio.create_task(self._run(), name="threadline-ingestion")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.pool.close()

    async def _run(self) -> None:
        failures = RetryLog(log, "ingestion tick")
        while True:
            try:
                worked = await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not kill the loop; the files stay queued.
                failures.failed()
                worked = False
            else:
                failures.succeeded()
            if not worked:
                self._wake.clear()  # what woke us is being handled: wait for news after this tick
                await woken_or_polled(self._wake, POLL_INTERVAL_S)

    async def _tick(self) -> bool:
        jobs = await self.db.transaction(
            lambda uow: ingestion.claim(uow, self.owner, self._clock(), _CLAIM_BATCH, self.max_attempts)
        )
        # Side by side: the pool runs up to ingestion_processes of them at once (the rest wait for a
        # child, their leases renewed meanwhile).
        tasks = [asyncio.ensure_future(self._index_with_heartbeat(job)) for job in jobs]
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            # Shutting down: hand the unfinished files back at once rather than at lease expiry.
            for job, task in zip(jobs, tasks, strict=True):
                task.cancel()
                if not task.done() or task.cancelled():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(ingestion.release(self.db, job, self.owner))
            raise
        if not jobs and time.monotonic() - self._last_sweep > SWEEP_INTERVAL_S:
            self._last_sweep = time.monotonic()
            await files_service.sweep_expired(self.db, self.blobs)
        return bool(jobs)

    async def _index_with_heartbeat(self, job: VectorStoreFile) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(job))
        try:
            await ingestion.index_file(self.db, self.blobs, self.embedder, job, self.owner, self.pool)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _heartbeat(self, job: VectorStoreFile) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            if not await ingestion.renew(self.db, job, self.owner, self._clock() + ingestion.LEASE_S):
                # Lost (another loop claimed the file after our lease ran out) or finished: nothing
                # left to keep alive. The indexing goes on; its result is dropped at the end.
                return
