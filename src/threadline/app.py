"""create_app(settings): the ASGI app. Its lifespan opens and closes the database (and, as they
arrive, the executor and event bus). Nothing connects or reads the environment at import."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from threadline.api.admission import Admission, Slots
from threadline.api.auth import KeyRing
from threadline.api.errors import http_error_handler, threadline_error_handler
from threadline.api.middleware import RequestContextMiddleware
from threadline.api.operations import operation_routes
from threadline.api.rate_limits import RequestLimiter
from threadline.api.routes import v1_routes
from threadline.blobs import blob_store_from_settings
from threadline.config import Settings
from threadline.domain.errors import ThreadlineError
from threadline.events.database import DatabaseBus, build_bus
from threadline.events.dispatch import NotifyingDispatcher
from threadline.executor.code_interpreter import code_interpreter_from_settings
from threadline.executor.file_search import FileSearchTool
from threadline.executor.ingestion import IngestionWorker
from threadline.executor.tools import ToolRegistry
from threadline.executor.worker import Executor
from threadline.llm.embeddings import embedding_model_from_settings
from threadline.llm.providers import ProviderRouter
from threadline.observability import metrics
from threadline.storage.database import Database
from threadline.storage.disk import DiskReserve
from threadline.storage.migrate import require_vector_index, upgrade
from threadline.storage.notify import Notifications

log = logging.getLogger("threadline")


def create_app(settings: Settings, *, migrate: bool = True) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(disk_reserve.ensure)
        db = Database(settings)
        if migrate:
            upgrade(db.engine)
        app.state.db = db
        app.state.settings = settings
        app.state.admission = Admission(
            streams=Slots(settings.max_streams), poll_holds=Slots(settings.max_poll_holds)
        )
        keyring.open(db)
        await limiter.start(db)
        if not await keyring.keys_required():
            log.warning(
                "no API keys exist (THREADLINE_API_KEYS, `threadline keys create`): any API key is "
                "accepted for the default project (local development mode)"
            )
        # Runs: the bus always exists (streams subscribe to it): in memory for one SQLite process
        # executing its own runs, through the database otherwise (events cross processes; on
        # PostgreSQL woken by the process's one LISTEN connection). Runs go to the embedded executor
        # unless disabled; then a NOTIFY tells `threadline worker` processes.
        # Server-side tools (file_search) register themselves on app.state.tool_registry.
        notifications = Notifications(db) if db.dialect == "postgresql" else None
        app.state.bus = build_bus(settings, db, notifications, embedded=settings.executor)
        app.state.tool_registry = ToolRegistry()
        # file_search answers from our vector stores (hybrid when embeddings are configured).
        embedder = embedding_model_from_settings(settings)
        if embedder is not None:
            require_vector_index(db.engine)
        app.state.embedder = embedder
        app.state.tool_registry.register(FileSearchTool(db, embedder))
        # code_interpreter: model code in sandboxed sessions, where runs execute (docs/code-interpreter.md).
        code_interpreter = code_interpreter_from_settings(settings, db, blob_store_from_settings(settings))
        app.state.tool_registry.register(code_interpreter)
        router = ProviderRouter.from_settings(settings)
        app.state.router = router
        executor: Executor | None = None
        if settings.executor:
            executor = Executor(db, settings, app.state.bus, router, app.state.tool_registry, notifications)
        dispatcher = NotifyingDispatcher(db)
        if executor is None:
            dispatcher.watch_unclaimed(settings.unclaimed_run_warning_s)
        app.state.executor = executor
        app.state.run_dispatch = executor if executor is not None else dispatcher
        if notifications is not None:
            await notifications.start()
        if isinstance(app.state.bus, DatabaseBus):
            await app.state.bus.start()
        if executor is not None:
            await executor.start()
        # Files and vector stores: bytes on disk and the background ingestion worker (it runs
        # wherever the executor runs).
        app.state.blobs = blob_store_from_settings(settings)
        ingestion: IngestionWorker | None = None
        if settings.executor:
            ingestion = IngestionWorker(
                db, app.state.blobs, embedder, sole_process=settings.workers <= 1, settings=settings
            )
            await ingestion.start()
        app.state.ingestion = ingestion
        # Start-up leaves ~150k long-lived objects (modules, tables, schemas); freezing them keeps the
        # collector from re-scanning them in every full collection, which showed as 80 ms p99 pauses.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if ingestion is not None:
                await ingestion.stop()
            if embedder is not None:
                await embedder.aclose()
            if executor is not None:
                await executor.aclose()
            await code_interpreter.aclose()
            await dispatcher.aclose()
            if isinstance(app.state.bus, DatabaseBus):
                await app.state.bus.aclose()
            if notifications is not None:
                await notifications.aclose()
            await router.aclose()
            await limiter.aclose()
            db.close()
            # Under --workers N the live gauges (active runs, streams, pool) of an API process that
            # stops must leave the sum; its counters stay (they are totals).
            metrics.mark_process_dead(os.getpid())

    # Deletes can free space on a full disk (storage/disk.py); written at start-up.
    disk_reserve = DiskReserve(settings.data_dir / ".disk-reserve", settings.disk_reserve_bytes)
    keyring = KeyRing(settings.api_keys)
    limiter = RequestLimiter(settings.project_requests_per_minute)
    return Starlette(
        # /metrics on the API port unless turned off or moved to its own port (metrics_port).
        routes=[
            *operation_routes(serve_metrics=settings.metrics and not settings.metrics_port),
            *v1_routes(),
        ],
        middleware=[
            Middleware(RequestContextMiddleware, keyring=keyring, limiter=limiter, disk_reserve=disk_reserve)
        ],
        exception_handlers={
            ThreadlineError: threadline_error_handler,
            HTTPException: http_error_handler,
        },
        lifespan=lifespan,
    )
