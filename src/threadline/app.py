"""create_app(settings): the ASGI app. Its lifespan opens the process's runtime (``runtime.py``:
database, event bus, tools, executor ...) and hands the API its typed context; nothing connects or
reads the environment at import."""

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
from threadline.api.context import ApiContext
from threadline.api.errors import http_error_handler, threadline_error_handler
from threadline.api.middleware import RequestContextMiddleware
from threadline.api.operations import operation_routes
from threadline.api.rate_limits import RequestLimiter
from threadline.api.routes import ShapeIndexedRouter, v1_routes
from threadline.config import Settings
from threadline.domain.errors import ThreadlineError
from threadline.observability import metrics
from threadline.runtime import Runtime, open_runtime
from threadline.storage.disk import DiskReserve

log = logging.getLogger("threadline")


def api_context(runtime: Runtime) -> ApiContext:
    settings = runtime.settings
    return ApiContext(
        settings=settings,
        db=runtime.db,
        admission=Admission(streams=Slots(settings.max_streams), poll_holds=Slots(settings.max_poll_holds)),
        bus=runtime.bus,
        run_dispatch=runtime.dispatch,
        blobs=runtime.blobs,
        router=runtime.router,
        embedder=runtime.embedder,
        wake_ingestion=runtime.wake_ingestion,
    )


def create_app(settings: Settings, *, migrate: bool = True) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.to_thread(disk_reserve.ensure)
        try:
            async with open_runtime(
                settings, serve_api=True, execute=settings.executor, migrate=migrate
            ) as runtime:
                app.state.runtime = runtime
                app.state.context = api_context(runtime)
                keyring.open(runtime.db)
                await limiter.start(runtime.db)
                try:
                    if not await keyring.keys_required():
                        log.warning(
                            "no API keys exist (THREADLINE_API_KEYS, `threadline keys create`): any API "
                            "key is accepted for the default project (local development mode)"
                        )
                    # Start-up leaves ~150k long-lived objects (modules, tables, schemas); freezing
                    # them keeps the collector from re-scanning them in every full collection,
                    # which showed as 80 ms p99 pauses.
                    gc.collect()
                    gc.freeze()
                    yield
                finally:
                    await limiter.aclose()
        finally:
            # Under --workers N the live gauges (active runs, streams, pool) of an API process that
            # stops must leave the sum; its counters stay (they are totals).
            metrics.mark_process_dead(os.getpid())

    # Deletes can free space on a full disk (storage/disk.py); written at start-up.
    disk_reserve = DiskReserve(settings.data_dir / ".disk-reserve", settings.disk_reserve_bytes)
    keyring = KeyRing(settings.api_keys)
    limiter = RequestLimiter(settings.project_requests_per_minute)
    app = Starlette(
        middleware=[
            Middleware(RequestContextMiddleware, keyring=keyring, limiter=limiter, disk_reserve=disk_reserve)
        ],
        exception_handlers={
            ThreadlineError: threadline_error_handler,
            HTTPException: http_error_handler,
        },
    )
    # The app's router is the shape-indexed one (api/routes.py); Starlette builds its middleware
    # stack around ``app.router`` on the first request, so setting it here is enough.
    app.router = ShapeIndexedRouter(
        [
            # /metrics on the API port unless turned off or moved to its own port (metrics_port).
            *operation_routes(serve_metrics=settings.metrics and not settings.metrics_port),
            *v1_routes(),
        ],
        lifespan=lifespan,
    )
    return app
