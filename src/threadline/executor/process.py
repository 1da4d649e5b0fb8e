"""``threadline worker``: a process that only executes runs (and ingests files), no HTTP.

It opens its own database pool, LISTEN connection (PostgreSQL), event bus and provider router, runs
the ``Executor`` until SIGTERM/SIGINT, then shuts down gracefully: it stops claiming, lets in-flight
runs finish for ``worker_grace_s``, and fails the rest with a clear ``last_error``.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from threadline.blobs import blob_store_from_settings
from threadline.config import Settings
from threadline.events.database import DatabaseBus, build_bus
from threadline.executor.code_interpreter import code_interpreter_from_settings
from threadline.executor.file_search import FileSearchTool
from threadline.executor.ingestion import IngestionWorker
from threadline.executor.tools import ToolRegistry
from threadline.executor.worker import Executor
from threadline.llm.embeddings import embedding_model_from_settings
from threadline.llm.providers import ProviderRouter
from threadline.storage.database import Database
from threadline.storage.migrate import require_vector_index, upgrade
from threadline.storage.notify import Notifications

log = logging.getLogger("threadline.worker")


def serve_worker(settings: Settings) -> None:
    """Blocking: run until SIGTERM or SIGINT."""
    asyncio.run(worker_main(settings))


async def worker_main(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """The worker's lifetime; ``stop`` (default: set by SIGTERM/SIGINT) ends it."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    db = Database(settings)
    try:
        # Safe beside API processes migrating at the same moment (the migration takes a lock).
        await asyncio.to_thread(upgrade, db.engine)
        await _run(settings, db, stop)
    finally:
        db.close()


async def _run(settings: Settings, db: Database, stop: asyncio.Event) -> None:
    notifications = Notifications(db) if db.dialect == "postgresql" else None
    bus = build_bus(settings, db, notifications, embedded=False)
    embedder = embedding_model_from_settings(settings)
    if embedder is not None:
        require_vector_index(db.engine)
    registry = ToolRegistry()
    registry.register(FileSearchTool(db, embedder))
    code_interpreter = code_interpreter_from_settings(settings, db, blob_store_from_settings(settings))
    registry.register(code_interpreter)
    router = ProviderRouter.from_settings(settings)
    executor = Executor(db, settings, bus, router, registry, notifications)
    ingestion = IngestionWorker(
        db, blob_store_from_settings(settings), embedder, sole_process=False, settings=settings
    )
    try:
        if notifications is not None:
            await notifications.start()
        if isinstance(bus, DatabaseBus):
            await bus.start()
        await executor.start()
        await ingestion.start()
        log.info("worker %s ready (max %d concurrent runs)", executor.owner, settings.run_max_concurrent)
        await stop.wait()
        log.info("worker %s stopping: %.0fs grace for running runs", executor.owner, settings.worker_grace_s)
    finally:
        await ingestion.stop()
        await executor.aclose(grace_s=settings.worker_grace_s)
        await code_interpreter.aclose()
        if isinstance(bus, DatabaseBus):
            await bus.aclose()
        if notifications is not None:
            await notifications.aclose()
        if embedder is not None:
            await embedder.aclose()
        await router.aclose()
