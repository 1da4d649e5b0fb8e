"""The composition root: ``open_runtime`` builds, starts and stops every long-lived part of a process,
for the API server (``app.py``'s lifespan) and ``threadline worker`` alike.

What a process holds follows from two answers:
- ``serve_api``: it answers HTTP, so its streams subscribe to its event bus;
- ``execute``: it claims and executes runs and ingests files (the embedded executor of
  ``threadline serve``, or ``threadline worker``). An API process that executes nothing hands each
  queued run on with a NOTIFY instead (``serve --no-executor``).

The parts start in dependency order — database (migrated), LISTEN connection (PostgreSQL), tools,
provider router, executor or hand-off, event bus, ingestion — on one ``AsyncExitStack``, which stops
them in the reverse order: ingestion and the executor (with its grace for running runs) stop while
the bus, the tools and the database they use are still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable

from threadline.blobs import BlobStore, blob_store_from_settings
from threadline.config import Settings
from threadline.events.bus import EventBus
from threadline.events.database import DatabaseBus, build_bus
from threadline.events.dispatch import NotifyingDispatcher, RunDispatcher
from threadline.executor.code_interpreter import code_interpreter_from_settings
from threadline.executor.file_search import FileSearchTool
from threadline.executor.scheduler import Executor
from threadline.executor.tools import ToolRegistry
from threadline.ingestion.loop import IngestionLoop
from threadline.llm.embeddings import embedding_model_from_settings
from threadline.llm.providers import ProviderRouter
from threadline.llm.types import ChatModel, EmbeddingModel
from threadline.storage.database import Database
from threadline.storage.migrate import require_vector_index, upgrade
from threadline.storage.notify import Notifications

log = logging.getLogger("threadline.worker")


@dataclasses.dataclass(frozen=True, slots=True)
class Runtime:
    """Everything long-lived that one process runs on; built only by ``open_runtime``."""

    settings: Settings
    db: Database
    bus: EventBus
    blobs: BlobStore
    embedder: EmbeddingModel | None
    router: ProviderRouter
    # Where a queued run goes: the executor itself, or a NOTIFY to the workers.
    dispatch: RunDispatcher
    executor: Executor | None
    ingestion: IngestionLoop | None

    def wake_ingestion(self) -> None:
        """Files were queued: the ingestion loop of this process (if it runs one) looks now."""
        if self.ingestion is not None:
            self.ingestion.notify()


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    serve_api: bool,
    execute: bool,
    model: ChatModel | None = None,
    clock: Callable[[], float] = time.time,
    migrate: bool = True,
) -> AsyncIterator[Runtime]:
    """Build and start a process's parts; stop them on exit. ``model`` replaces every configured
    provider (the in-process tests' scripted model); ``clock`` (Unix seconds) drives leases and
    expiry; ``migrate=False`` leaves the schema as it is."""
    if not (serve_api or execute):
        raise ValueError("a runtime serves the API, executes runs, or both")
    async with contextlib.AsyncExitStack() as stack:
        db = Database(settings)
        stack.callback(db.close)
        if migrate:
            # Safe beside other processes migrating at the same moment (the migration takes a lock).
            await asyncio.to_thread(upgrade, db.engine)
        notifications = Notifications(db) if db.dialect == "postgresql" else None
        embedder = embedding_model_from_settings(settings)
        if embedder is not None:
            require_vector_index(db.engine)
            stack.push_async_callback(embedder.aclose)
        router = (
            ProviderRouter.serving(model) if model is not None else ProviderRouter.from_settings(settings)
        )
        stack.push_async_callback(router.aclose)
        blobs = blob_store_from_settings(settings)
        tools = ToolRegistry()
        # file_search answers from our vector stores (hybrid when embeddings are configured);
        # code_interpreter runs model code in sandboxed sessions where runs execute.
        tools.register(FileSearchTool(db, embedder))
        code_interpreter = code_interpreter_from_settings(settings, db, blobs)
        tools.register(code_interpreter)
        stack.push_async_callback(code_interpreter.aclose)
        # In memory for one process executing its own runs on SQLite; through the database whenever
        # events may cross processes (events/database.py, uses_database_bus).
        bus = build_bus(settings, db, notifications, embedded=serve_api and execute)
        executor: Executor | None = None
        dispatch: RunDispatcher
        if execute:
            # Built before the LISTEN connection starts: it subscribes to the runs channel.
            executor = dispatch = Executor(db, settings, bus, router, blobs, tools, notifications, clock)
        else:
            dispatcher = NotifyingDispatcher(db)
            dispatcher.watch_unclaimed(settings.unclaimed_run_warning_s)
            stack.push_async_callback(dispatcher.aclose)
            dispatch = dispatcher
        if notifications is not None:
            await notifications.start()
            stack.push_async_callback(notifications.aclose)
        if isinstance(bus, DatabaseBus):
            await bus.start()
            stack.push_async_callback(bus.aclose)
        ingestion: IngestionLoop | None = None
        if executor is not None:
            await executor.start()
            # A worker gives running runs their grace; an API process stops at once (its runs fail
            # with a clear last_error: a rolling restart moves work to `threadline worker`s).
            grace_s = 0.0 if serve_api else settings.worker_grace_s
            stack.push_async_callback(executor.aclose, grace_s)
            ingestion = IngestionLoop(
                db,
                blobs,
                embedder,
                sole_process=serve_api and settings.workers <= 1,
                settings=settings,
                clock=clock,
            )
            await ingestion.start()
            stack.push_async_callback(ingestion.stop)
        yield Runtime(settings, db, bus, blobs, embedder, router, dispatch, executor, ingestion)


def serve_worker(settings: Settings) -> None:
    """``threadline worker``: execute runs (and ingest files), no HTTP, until SIGTERM or SIGINT;
    then stop claiming, give running runs ``worker_grace_s`` and fail the rest with a clear
    ``last_error``. Blocking."""
    asyncio.run(worker_main(settings))


async def worker_main(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """The worker's lifetime; ``stop`` (default: set by SIGTERM/SIGINT) ends it."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    async with open_runtime(settings, serve_api=False, execute=True) as runtime:
        assert runtime.executor is not None  # execute=True
        owner = runtime.executor.owner
        log.info("worker %s ready (max %d concurrent runs)", owner, settings.run_max_concurrent)
        await stop.wait()
        log.info("worker %s stopping: %.0fs grace for running runs", owner, settings.worker_grace_s)
