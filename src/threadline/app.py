"""create_app(settings): the ASGI app. Its lifespan opens and closes the database (and, as they
arrive, the executor and event bus). Nothing connects or reads the environment at import."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from threadline.api.errors import http_error_handler, threadline_error_handler
from threadline.api.middleware import RequestContextMiddleware
from threadline.api.routes import v1_routes
from threadline.config import Settings
from threadline.domain.errors import ThreadlineError
from threadline.storage.database import Database
from threadline.storage.migrate import upgrade

log = logging.getLogger("threadline")


def create_app(settings: Settings, *, migrate: bool = True) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(settings)
        if migrate:
            upgrade(db.engine)
        app.state.db = db
        app.state.settings = settings
        if not settings.api_keys:
            log.warning("THREADLINE_API_KEYS is not set: any API key is accepted (local development mode)")
        try:
            yield
        finally:
            db.close()

    return Starlette(
        routes=v1_routes(),
        middleware=[Middleware(RequestContextMiddleware, api_keys=settings.api_keys)],
        exception_handlers={
            ThreadlineError: threadline_error_handler,
            HTTPException: http_error_handler,
        },
        lifespan=lifespan,
    )
