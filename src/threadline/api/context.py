"""What a request handler reaches through the app: ``context(request)``, one typed ``ApiContext``
that ``app.py`` builds from the process's runtime when it starts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from starlette.requests import Request

from threadline.api.admission import Admission
from threadline.blobs import BlobStore
from threadline.config import Settings
from threadline.events.bus import EventBus
from threadline.events.dispatch import RunDispatcher
from threadline.llm.providers import ProviderRouter
from threadline.llm.types import EmbeddingModel
from threadline.storage.database import Database


@dataclasses.dataclass(frozen=True, slots=True)
class ApiContext:
    settings: Settings
    db: Database
    admission: Admission
    # Streams subscribe here; queued runs go to ``run_dispatch`` (the embedded executor, or a
    # NOTIFY to `threadline worker` processes under ``--no-executor``).
    bus: EventBus
    run_dispatch: RunDispatcher
    blobs: BlobStore
    router: ProviderRouter
    embedder: EmbeddingModel | None
    # Files were queued for ingestion: wake this process's ingestion loop, if it runs one.
    wake_ingestion: Callable[[], None]


def context(request: Request) -> ApiContext:
    value: ApiContext = request.app.state.context
    return value
